//! Every text a member reads, in English and Chinese (SPEC §4: messages in
//! zh and en): page words, error titles and error messages. One home, so a
//! wording or a translation changes in one place. Hints for the admin are
//! not here: they name console settings in WeCom's own (Chinese) words.

use super::browser::Language;

/// One text in both languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    pub en: &'static str,
    pub zh: &'static str,
}

impl Text {
    pub fn get(&self, language: Language) -> &'static str {
        match language {
            Language::En => self.en,
            Language::Zh => self.zh,
        }
    }
}

const fn text(en: &'static str, zh: &'static str) -> Text {
    Text { en, zh }
}

// Page words.
pub const LOG_IN: Text = text("Log in", "登录");
pub const LOG_IN_WITH_WECOM: Text = text("Log in with WeCom", "企业微信登录");
pub const WECOM: Text = text("WeCom", "企业微信");
pub const LOG_IN_AGAIN: Text = text("Log in again", "重新登录");
pub const LOG_OUT: Text = text("Log out", "退出登录");
pub const FOR_THE_ADMIN: Text = text("For the administrator", "给管理员");
pub const SIGNED_IN_AS: Text = text("Signed in as", "当前登录");
pub const CHOOSE: Text = text("Choose how to log in:", "请选择登录方式：");
/// The link to WeCom's login page under its login panel.
pub const OPEN_WECOM_LOGIN_PAGE: Text = text(
    "Trouble with the QR code? Open WeCom's login page",
    "二维码无法使用？打开企业微信登录页",
);

// Error titles.
pub const TITLE_BAD_REQUEST: Text = text("Bad request", "请求有误");
pub const TITLE_LOGIN_FAILED: Text = text("Login failed", "登录失败");
pub const TITLE_CANNOT_LOG_IN: Text = text("Cannot log in", "无法登录");
pub const TITLE_NOT_SIGNED_IN: Text = text("Not signed in", "未登录");
pub const TITLE_WECOM_UNAVAILABLE: Text = text("WeCom unavailable", "企业微信暂不可用");
pub const TITLE_SERVICE_UNAVAILABLE: Text = text("Service unavailable", "服务暂不可用");
pub const TITLE_MISCONFIGURED: Text = text("Configuration error", "配置有误");
pub const TITLE_CONFLICT: Text = text("Conflict", "数据冲突");
pub const TITLE_NOT_FOUND: Text = text("Not found", "页面不存在");
pub const TITLE_NO_ACCESS: Text = text("No access", "无权访问");
pub const TITLE_CROSS_SITE: Text = text("Refused", "已拒绝");
pub const CROSS_SITE: Text = text(
    "This request came from another site, so nothing was changed. Log out from the app's own pages.",
    "该请求来自其他网站，未做任何更改。请在应用自己的页面上退出登录。",
);
pub const TITLE_TOO_MANY_REQUESTS: Text = text("Too many login attempts", "登录尝试过于频繁");

// Error messages.
pub const REQUEST_INCOMPLETE: Text = text(
    "The login request was incomplete. Please start the login again.",
    "登录请求不完整，请重新登录。",
);
pub const LOGIN_EXPIRED: Text = text(
    "The login took too long and expired. Please log in again.",
    "登录已超时，请重新登录。",
);
pub const LOGIN_FROM_ANOTHER_BROWSER: Text = text(
    "This login was started in another browser (or cookies are blocked). Please log in again here.",
    "此次登录不是在当前浏览器发起的（或浏览器禁用了 Cookie），请在此重新登录。",
);
pub const LOGIN_LINK_INVALID: Text = text(
    "This login link is no longer valid (used, expired or altered). Please log in again.",
    "登录链接已失效（已使用、已过期或被篡改），请重新登录。",
);
pub const NOT_A_MEMBER: Text = text(
    "You are not a member of this company in WeCom, so you cannot log in here.",
    "您不是本企业的企业微信成员，无法登录。",
);
pub const USER_NOT_FOUND: Text = text(
    "No account matches your WeCom mobile number (user not found). Ask your administrator to create one.",
    "用户不存在：没有与您企业微信手机号匹配的账号，请联系管理员开通。",
);
pub const USER_DISABLED: Text = text(
    "This account was disabled when its WeCom member left the company. Ask your administrator.",
    "该账号已停用（对应的企业微信成员已离开企业），请联系管理员。",
);
pub const FIRST_LOGIN_IN_CLIENT: Text = text(
    "Your first login must happen inside the WeCom app: open this app once from the WeCom workbench, then QR login works too.",
    "首次登录需在企业微信客户端内完成：请先从企业微信工作台打开本应用一次，之后即可扫码登录。",
);
pub const OUTSIDE_VISIBLE_RANGE: Text = text(
    "Your WeCom account may not use this app. Ask your administrator to add you to the app's visible range.",
    "您的企业微信账号无权使用此应用，请联系管理员将您加入应用的可见范围。",
);
pub const SESSION_ENDED: Text = text(
    "Your session has ended. Please log in again.",
    "登录状态已失效，请重新登录。",
);
pub const WECOM_UNAVAILABLE: Text = text(
    "WeCom could not be reached or is busy. Please try again in a moment.",
    "暂时无法连接企业微信或企业微信繁忙，请稍后重试。",
);
pub const SERVICE_UNAVAILABLE: Text = text(
    "The login service is temporarily unavailable. Please try again in a moment.",
    "登录服务暂时不可用，请稍后重试。",
);
pub const MISCONFIGURED: Text = text(
    "WeCom login is not set up correctly. Please tell your administrator.",
    "企业微信登录配置有误，请联系管理员。",
);
pub const CONFLICT: Text = text(
    "The request conflicts with existing data.",
    "请求与已有数据冲突。",
);
pub const NOT_FOUND: Text = text("Not found.", "未找到。");
pub const REFUSED_BY_USER_RULE: Text = text(
    "Your account may not open this app. Ask its administrator for access.",
    "您的账号无权访问此应用，请联系应用管理员开通。",
);
pub const REFUSED_BY_DEPARTMENT_RULE: Text = text(
    "Your department may not open this app. Ask its administrator for access.",
    "您所在的部门无权访问此应用，请联系应用管理员开通。",
);
pub const REFUSED_BY_TAG_RULE: Text = text(
    "A tag you carry in WeCom may not open this app. Ask its administrator for access.",
    "您在企业微信中的标签无权访问此应用，请联系应用管理员开通。",
);
pub const NOT_ALLOWED_BY_RULES: Text = text(
    "This app is open to some members, departments or tags only, and you are not among them. Ask its administrator for access.",
    "此应用仅对指定的成员、部门或标签开放，您不在其中，请联系应用管理员开通。",
);
pub const TOO_MANY_FROM_CLIENT: Text = text(
    "Too many login attempts from your network. Please wait a minute and try again.",
    "您所在网络的登录尝试过于频繁，请稍候一分钟再试。",
);
pub const TOO_MANY_FOR_APP: Text = text(
    "Too many people are logging in right now. Please wait a minute and try again.",
    "当前登录人数过多，请稍候一分钟再试。",
);

// ---- for the administrator: guards that cannot work as configured ----

pub const CAS_OVERWRITES: Text = text(
    "The key-value store's compare-and-swap overwrites values changed after it read them: one user per member cannot be kept. Use a store with atomic compare-and-swap (Spin's SQLite or Redis store).",
    "键值存储的比较并交换（compare-and-swap）覆盖了读取后被修改的值，并发登录时无法保证每个成员只对应一个用户；请改用支持原子比较并交换的存储（Spin 的 SQLite 或 Redis 存储）。",
);
pub const CLOCK_OFF: Text = text(
    "This host's clock is more than a minute off WeCom's (the Date of its answers): login states, sessions and caches are timed by it. Synchronise it (NTP).",
    "本机时钟与企业微信的时钟（其应答的 Date）相差超过一分钟，登录状态、会话和缓存都按本机时钟计时；请同步时钟（NTP）。",
);
pub const API_TIMEOUT_REFUSED: Text = text(
    "The host refused the timeouts of calls to WeCom: api_timeout_ms does not bound them. Set the host's own outbound timeout.",
    "宿主拒绝了调用企业微信接口的超时设置，api_timeout_ms 不起作用；请设置宿主自身的出站超时。",
);
