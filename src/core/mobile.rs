//! Mobile numbers: one spelling per number, so a member's WeCom mobile finds
//! the user an admin stored as `+86 138 0000 0000`.

/// Longest number accepted (E.164 allows 15 digits; room for a `+`).
const MAX_DIGITS: usize = 20;

/// Normalises a mobile number: blanks, `-`, `(`, `)` and `.` removed; a `+86`
/// or `86` prefix dropped from 13-digit Chinese mobiles (11 digits starting with
/// 1); other international numbers keep their `+`. None when it is not a phone
/// number at all.
pub fn normalize(raw: &str) -> Option<String> {
    let mut plus = false;
    let mut digits = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if digits.is_empty() && !plus => plus = true,
            ' ' | '-' | '(' | ')' | '.' | '\u{3000}' => {}
            _ => return None,
        }
    }
    if digits.len() < 5 || digits.len() > MAX_DIGITS {
        return None;
    }
    let china = |d: &str| d.len() == 11 && d.starts_with('1');
    if let Some(local) = digits.strip_prefix("86").filter(|d| china(d)) {
        return Some(local.to_owned());
    }
    if china(&digits) && !plus {
        return Some(digits);
    }
    Some(if plus { format!("+{digits}") } else { digits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_mobiles_in_every_common_spelling_are_one_number() {
        for spelling in [
            "13800000000",
            "+86 138 0000 0000",
            "+8613800000000",
            "8613800000000",
            "86-138-0000-0000",
            " 138 0000 0000 ",
            "(+86) 138.0000.0000",
        ] {
            assert_eq!(
                normalize(spelling).as_deref(),
                Some("13800000000"),
                "{spelling}"
            );
        }
    }

    #[test]
    fn other_numbers_keep_their_country_code() {
        assert_eq!(
            normalize("+1 415 555 0100").as_deref(),
            Some("+14155550100")
        );
        assert_eq!(normalize("+852 9123 4567").as_deref(), Some("+85291234567"));
    }

    #[test]
    fn non_numbers_are_refused() {
        for bad in ["", "abc", "138-0000-000x", "1+38", "12", &"1".repeat(30)] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
