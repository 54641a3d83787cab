//! Which browser a request comes from: the WeCom client (mobile or desktop),
//! plain WeChat, or anything else. Decides between in-client OAuth and web login.

/// User-Agents longer than this are judged on their first `MAX_USER_AGENT` bytes.
pub const MAX_USER_AGENT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    WecomMobile,
    WecomDesktop,
    Wechat,
    Browser,
}

impl ClientKind {
    /// `wecom-mobile`, `wecom-desktop`, `wechat`, `browser` (the WIT enum's names).
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::WecomMobile => "wecom-mobile",
            ClientKind::WecomDesktop => "wecom-desktop",
            ClientKind::Wechat => "wechat",
            ClientKind::Browser => "browser",
        }
    }

    pub fn is_wecom(self) -> bool {
        matches!(self, ClientKind::WecomMobile | ClientKind::WecomDesktop)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Ios,
    Android,
    Harmony,
    Windows,
    Macos,
    Linux,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Zh,
    En,
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserInfo {
    pub client: ClientKind,
    pub platform: Platform,
    pub wecom_version: Option<String>,
    pub private_deployment: bool,
    pub language: Option<Language>,
}

/// Judges a User-Agent. `wxwork` is checked before `MicroMessenger`: the WeCom
/// browser sends both, plain WeChat only the latter.
pub fn detect(user_agent: &str) -> BrowserInfo {
    let ua = truncate_at_char_boundary(user_agent, MAX_USER_AGENT);
    let private_deployment = ua.contains("wxworklocal/") || ua.contains("wwlocal/");
    let is_wecom = ua.contains("wxwork");
    let platform = platform(ua);
    let client = if is_wecom {
        if is_desktop_client(ua, platform) {
            ClientKind::WecomDesktop
        } else {
            ClientKind::WecomMobile
        }
    } else if ua.contains("MicroMessenger") {
        ClientKind::Wechat
    } else {
        ClientKind::Browser
    };
    let wecom_version = if is_wecom {
        token_value(ua, "wxwork/").or_else(|| token_value(ua, "wxworklocal/"))
    } else {
        None
    };
    let language = if client == ClientKind::Browser {
        None
    } else {
        token_value(ua, "Language/").and_then(|tag| parse_language_tag(&tag))
    };
    BrowserInfo {
        client,
        platform,
        wecom_version,
        private_deployment,
        language,
    }
}

/// `zh`, `zh_CN`, `zh-Hans`, `en`, `en-US`, ... → the language; others → none.
pub fn parse_language_tag(tag: &str) -> Option<Language> {
    let primary = tag.split(['_', '-', ';', ',']).next()?.trim();
    if primary.eq_ignore_ascii_case("zh") {
        Some(Language::Zh)
    } else if primary.eq_ignore_ascii_case("en") {
        Some(Language::En)
    } else {
        None
    }
}

fn is_desktop_client(ua: &str, platform: Platform) -> bool {
    if ua.contains("WindowsWechat") || ua.contains("MacWechat") {
        return true;
    }
    // The Mac client: `(MicroMessenger/6.2) WeChat/2.0.4`.
    if platform == Platform::Macos && ua.contains("WeChat/") {
        return true;
    }
    let mobile = [
        "Mobile",
        "Android",
        "iPhone",
        "iPad",
        "iPod",
        "HarmonyOS",
        "OpenHarmony",
    ]
    .iter()
    .any(|marker| ua.contains(marker));
    !mobile
        && matches!(
            platform,
            Platform::Windows | Platform::Macos | Platform::Linux
        )
}

fn platform(ua: &str) -> Platform {
    // Order matters: iOS UAs say "like Mac OS X", Android UAs say "Linux".
    if ua.contains("OpenHarmony") || ua.contains("HarmonyOS") {
        Platform::Harmony
    } else if ua.contains("iPhone") || ua.contains("iPad") || ua.contains("iPod") {
        Platform::Ios
    } else if ua.contains("Android") {
        Platform::Android
    } else if ua.contains("Windows") {
        Platform::Windows
    } else if ua.contains("Macintosh") || ua.contains("Mac OS X") {
        Platform::Macos
    } else if ua.contains("Linux") || ua.contains("X11") {
        Platform::Linux
    } else {
        Platform::Unknown
    }
}

/// The value after `prefix` up to the next space or parenthesis, if not empty.
fn token_value(ua: &str, prefix: &str) -> Option<String> {
    let start = ua.find(prefix)? + prefix.len();
    let value: &str = ua[start..]
        .split([' ', '(', ')', ';'])
        .next()
        .unwrap_or_default();
    (!value.is_empty()).then(|| value.to_owned())
}

/// The longest start of `text` of at most `max` bytes that ends between
/// characters.
pub(crate) fn truncate_at_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real User-Agents: `expected_client<TAB>user_agent` (the project's own copy).
    const CORPUS: &str = include_str!("../../testdata/user-agents.tsv");

    #[test]
    fn every_corpus_user_agent_is_classified_as_expected() {
        let mut cases = 0;
        for line in CORPUS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (expected, ua) = line.split_once('\t').expect("tab-separated line");
            assert_eq!(detect(ua).client.name(), expected, "UA: {ua}");
            cases += 1;
        }
        assert!(cases >= 15, "corpus shrank to {cases} cases");
    }

    #[test]
    fn wecom_ios_reports_platform_version_and_language() {
        let info = detect(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)  Mobile/15E148 wxwork/4.1.30 MicroMessenger/7.0.1 Language/zh ColorScheme/Light wwmver/3.26.13.714",
        );
        assert_eq!(info.client, ClientKind::WecomMobile);
        assert_eq!(info.platform, Platform::Ios);
        assert_eq!(info.wecom_version.as_deref(), Some("4.1.30"));
        assert_eq!(info.language, Some(Language::Zh));
        assert!(!info.private_deployment);
    }

    #[test]
    fn wecom_windows_desktop_version_is_before_the_parenthesis() {
        let info = detect(
            "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/107.0.5304.110 Safari/537.36 Language/en wxwork/4.1.10 (MicroMessenger/6.2) WindowsWechat",
        );
        assert_eq!(info.client, ClientKind::WecomDesktop);
        assert_eq!(info.platform, Platform::Windows);
        assert_eq!(info.wecom_version.as_deref(), Some("4.1.10"));
        assert_eq!(info.language, Some(Language::En));
    }

    #[test]
    fn private_deployment_is_wecom_with_its_own_version() {
        let info = detect(
            "Mozilla/5.0 (Linux; Android 12; M2012K11AC) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 wxworklocal/3.1.2 wwlocal/3.1.2 MicroMessenger/7.0.1 Language/zh",
        );
        assert_eq!(info.client, ClientKind::WecomMobile);
        assert_eq!(info.platform, Platform::Android);
        assert_eq!(info.wecom_version.as_deref(), Some("3.1.2"));
        assert!(info.private_deployment);
    }

    #[test]
    fn plain_wechat_is_not_wecom_even_with_a_language() {
        let info = detect(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 10_2 like Mac OS X) AppleWebKit/602.3.12 (KHTML, like Gecko) Mobile/14C92 MicroMessenger/6.5.23 NetType/WIFI Language/zh_CN",
        );
        assert_eq!(info.client, ClientKind::Wechat);
        assert!(!info.client.is_wecom());
        assert_eq!(info.wecom_version, None);
        assert_eq!(info.language, Some(Language::Zh));
    }

    #[test]
    fn empty_and_huge_user_agents_do_not_panic() {
        assert_eq!(detect("").client, ClientKind::Browser);
        assert_eq!(detect("").platform, Platform::Unknown);
        let huge = format!("{}wxwork/1.0", "é".repeat(MAX_USER_AGENT));
        // The marker lies beyond the first 4 KiB: not looked at.
        assert_eq!(detect(&huge).client, ClientKind::Browser);
        assert_eq!(detect("wxwork/").wecom_version, None);
    }

    #[test]
    fn language_tags() {
        assert_eq!(parse_language_tag("zh_CN"), Some(Language::Zh));
        assert_eq!(parse_language_tag("en-US"), Some(Language::En));
        assert_eq!(parse_language_tag("EN"), Some(Language::En));
        assert_eq!(parse_language_tag("fr"), None);
        assert_eq!(parse_language_tag(""), None);
    }
}
