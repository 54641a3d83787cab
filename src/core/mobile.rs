//! Mobile numbers: one spelling per number, so a member's WeCom mobile finds
//! the user an admin imported from a spreadsheet as `+86 138 0000 0000`.
//!
//! The rules, each with its source (no phone-number library: the metadata of
//! one would weigh more than the whole component):
//!
//! - Full-width digits, plus, parentheses and hyphens (`１３８`, `＋８６`,
//!   `（）`, `－`; Unicode "Halfwidth and Fullwidth Forms", which NFKC folds to
//!   ASCII) are read as their ASCII forms: Chinese input methods type them.
//! - Separators are dropped: blanks of every kind (space, no-break space,
//!   ideographic space, tab), `-`, the dashes `‐ ‑ ‒ – — ―`, `.`, `/`-free
//!   grouping such as `(010)`: ITU-T E.123 writes numbers with spaces and
//!   parentheses, spreadsheets and forms add the rest. Invisible format
//!   characters (zero-width space, BOM) are dropped too.
//! - A leading `'` (a spreadsheet's "this is text" mark) is dropped, and so is
//!   a trailing `.0` that a spreadsheet adds when it stored the number as a
//!   float (`13800000000.0`; only after 11 to 15 digits). A number in scientific notation (`1.38E+10`)
//!   lost digits: refused, with a hint.
//! - `00` before a country code is the international call prefix (ITU-T
//!   E.164 Annex; used in China and Europe): the same as `+`.
//! - `(0)` right after a country code is a trunk prefix that is not dialled
//!   from abroad (E.123 §2.5, e.g. `+44 (0)20 …`): dropped; elsewhere it is
//!   a digit.
//! - A lone leading `1` group (`1 345 555 0100`, `1 (345) 555-0100`) is the
//!   North American country code written without `+` (NANP notation): kept
//!   as `+1…`, never read as a mainland mobile, which is written 3-4-4.
//! - A Chinese mobile (11 digits `1[3-9]…`, MIIT numbering plan) is kept as
//!   its 11 digits, with or without `+86` / `86` / `0086`: that is how WeCom's
//!   `getuserdetail` gives mainland members' mobiles.
//! - Any other number with a country code keeps it as `+<digits>` (E.164),
//!   so `+852 9123 4567` never equals a mainland number; a number without a
//!   country code that is not a Chinese mobile is kept as its digits.
//! - Anything else (letters, an extension, two numbers, fewer than 5 or more
//!   than 15 digits: E.164's maximum) is not a phone number.

/// Most digits of an E.164 number (ITU-T E.164 §6).
const MAX_DIGITS: usize = 15;
/// Fewer digits are no phone number (short codes are not mobiles).
const MIN_DIGITS: usize = 5;

/// Why a text is not a phone number, for the admin (the import names the
/// row and the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotANumber {
    /// Letters, an extension, a second number, or a sign in the wrong place.
    Characters,
    /// Spreadsheet scientific notation: digits were lost.
    Scientific,
    /// Fewer than 5 or more than 15 digits.
    Length,
}

impl NotANumber {
    pub fn message(self) -> &'static str {
        match self {
            NotANumber::Characters => {
                "is not a phone number (only digits, +, blanks, - ( ) and . may appear, one number per field)"
            }
            NotANumber::Scientific => {
                "is in scientific notation (e.g. 1.38E+10), which lost digits: format the column as text and export again"
            }
            NotANumber::Length => "is not a phone number (it needs 5 to 15 digits)",
        }
    }
}

/// Normalises a mobile number (see the module's rules); None when it is not
/// a phone number.
pub fn normalize(raw: &str) -> Option<String> {
    parse(raw).ok()
}

/// Normalises a mobile number, or says why it is not one.
pub fn parse(raw: &str) -> Result<String, NotANumber> {
    let folded: String = raw.chars().filter_map(fold).collect();
    let mut text = folded.trim_matches(' ');
    text = text
        .strip_prefix('\'')
        .unwrap_or(text)
        .trim_start_matches(' ');
    if is_scientific(text) {
        return Err(NotANumber::Scientific);
    }
    // `13800000000.0`: a spreadsheet's float (only a whole number's length,
    // so `12345678.000` is not cut to 8 digits).
    if let Some((whole, zeros)) = text.rsplit_once('.')
        && !zeros.is_empty()
        && zeros.bytes().all(|b| b == b'0')
        && (11..=MAX_DIGITS).contains(&whole.len())
        && whole.bytes().all(|b| b.is_ascii_digit())
    {
        text = whole;
    }
    let mut plus = false;
    let mut digits = String::with_capacity(text.len());
    // Digit groups seen so far (a separator between digits starts a group).
    let mut groups = 0;
    let mut first_group = 0;
    let mut in_group = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        // `(0)` right after the country code: a trunk prefix not dialled
        // from abroad (E.123 `+44 (0)20 …`); anywhere else it is a digit.
        if let Some(after) = rest.strip_prefix("(0)")
            && (plus || digits.starts_with("00"))
            && groups == 1
            && digits.len() == first_group
        {
            rest = after;
            continue;
        }
        match c {
            '0'..='9' => {
                if !in_group {
                    groups += 1;
                    in_group = true;
                }
                digits.push(c);
                if groups == 1 {
                    first_group = digits.len();
                }
            }
            '+' if digits.is_empty() && !plus => plus = true,
            ' ' | '-' | '(' | ')' | '.' => in_group = false,
            _ => return Err(NotANumber::Characters),
        }
        rest = &rest[c.len_utf8()..];
    }
    // `1 345 555 0100`, `1 (345) 555-0100`: a lone leading `1` is the North
    // American country code written without `+` (NANP, E.123); mainland
    // mobiles are written 3-4-4 (`138 0000 0000`).
    if !plus && groups > 1 && first_group == 1 && digits.starts_with('1') && digits.len() == 11 {
        return Ok(format!("+{digits}"));
    }
    // `00` + country code is `+` + country code.
    if !plus && digits.len() > 2 + MIN_DIGITS && digits.starts_with("00") {
        digits.drain(..2);
        plus = true;
    }
    if digits.len() < MIN_DIGITS || digits.len() > MAX_DIGITS {
        return Err(NotANumber::Length);
    }
    if let Some(local) = digits.strip_prefix("86").filter(|d| is_chinese_mobile(d))
        && (plus || digits.len() == 13)
    {
        return Ok(local.to_owned());
    }
    if !plus && is_chinese_mobile(&digits) {
        return Ok(digits);
    }
    Ok(if plus { format!("+{digits}") } else { digits })
}

/// `1.38E+10`, `1.38e10`: a digit, optional decimals, an exponent.
fn is_scientific(text: &str) -> bool {
    let Some((mantissa, exponent)) = text.split_once(['e', 'E']) else {
        return false;
    };
    let (whole, decimals) = mantissa.split_once('.').unwrap_or((mantissa, "0"));
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    [whole, decimals, exponent]
        .iter()
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// 11 digits `1[3-9]…`: the mainland mobile numbering plan (MIIT).
fn is_chinese_mobile(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    bytes.len() == 11 && bytes[0] == b'1' && (b'3'..=b'9').contains(&bytes[1])
}

/// One character as the parser reads it: full-width forms as ASCII, every
/// blank and dash as a separator, invisible format characters dropped.
fn fold(c: char) -> Option<char> {
    Some(match c {
        // Full-width digits and signs (U+FF10..U+FF19, U+FF0B, U+FF08/09, U+FF0D, U+FF0E).
        '\u{FF10}'..='\u{FF19}' => char::from(b'0' + (c as u32 - 0xFF10) as u8),
        '\u{FF0B}' => '+',
        '\u{FF08}' => '(',
        '\u{FF09}' => ')',
        '\u{FF0D}' | '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
        '\u{FF0E}' => '.',
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => return None,
        c if c.is_whitespace() => ' ',
        c => c,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_mobiles_in_every_spelling_people_store_are_one_number() {
        for spelling in [
            "13800000000",
            "+86 138 0000 0000",
            "+8613800000000",
            "8613800000000",
            "86-138-0000-0000",
            " 138 0000 0000 ",
            "(+86) 138.0000.0000",
            // Full-width, as Chinese input methods type it.
            "１３８００００００００",
            "＋８６ １３８ ００００ ００００",
            "（＋８６）１３８－００００－００００",
            // International call prefix instead of +.
            "0086 138 0000 0000",
            "008613800000000",
            // Spreadsheets: a text mark, a float, no-break and ideographic spaces.
            "'13800000000",
            "13800000000.0",
            "138\u{a0}0000\u{a0}0000",
            "138\u{3000}0000\u{3000}0000",
            "\t13800000000\t",
            // Web forms: dashes of every width, invisible characters.
            "138–0000–0000",
            "138—0000—0000",
            "\u{feff}138\u{200b}0000 0000",
        ] {
            assert_eq!(
                normalize(spelling).as_deref(),
                Some("13800000000"),
                "{spelling:?}"
            );
        }
    }

    #[test]
    fn other_numbers_keep_their_country_code_and_stay_distinct() {
        for (spelling, expected) in [
            ("+1 415 555 0100", "+14155550100"),
            ("001 415 555 0100", "+14155550100"),
            ("+852 9123 4567", "+85291234567"),
            ("00852-9123-4567", "+85291234567"),
            ("＋８５２ ９１２３ ４５６７", "+85291234567"),
            ("+44 (0)20 7946 0018", "+442079460018"),
            // A lone leading 1 is North America, not a mainland mobile.
            ("1 (345) 555-0100", "+13455550100"),
            ("1-345-555-0100", "+13455550100"),
            // (0) only right after the country code.
            ("+44 20 (0)123 4567", "+442001234567"),
            ("12345678.000", "12345678000"),
            // +86 with a number that is no mainland mobile keeps its code.
            ("+86 10 6552 9988", "+861065529988"),
            // No country code and no mainland mobile: its digits.
            ("010 6552 9988", "01065529988"),
        ] {
            assert_eq!(
                normalize(spelling).as_deref(),
                Some(expected),
                "{spelling:?}"
            );
        }
        assert_ne!(normalize("+85213800000"), normalize("13800000000"));
    }

    #[test]
    fn what_is_not_a_phone_number_is_refused_and_says_why() {
        for (bad, why) in [
            ("", NotANumber::Length),
            ("abc", NotANumber::Characters),
            ("138-0000-000x", NotANumber::Characters),
            ("1+38", NotANumber::Characters),
            ("12", NotANumber::Length),
            ("1234567890123456", NotANumber::Length),
            ("13800000000 ext. 12", NotANumber::Characters),
            ("13800000000 转 12", NotANumber::Characters),
            ("13800000000/13900000000", NotANumber::Characters),
            ("13800000000, 13900000000", NotANumber::Characters),
            ("1.38E+10", NotANumber::Scientific),
            ("1.38e10", NotANumber::Scientific),
            ("1E+10", NotANumber::Scientific),
        ] {
            assert_eq!(parse(bad), Err(why), "{bad:?}");
        }
    }
}
