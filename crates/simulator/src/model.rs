//! The simulated world: companies (corps), their self-built apps (agents),
//! members and non-members. Plain structs with public fields; build your own or
//! start from [`Model::sample`].

use std::net::IpAddr;

/// Corp id of the sample company (the one wecom-auth's `example` authenticator names).
pub const SAMPLE_CORP_ID: &str = "ww0123456789abcdef";
/// AgentId of the sample company's app.
pub const SAMPLE_AGENT_ID: u32 = 1_000_002;
/// Secret of the sample app, spelled to be easy to search for: a test that
/// finds `DO-NOT-LEAK` in an output has found a leak.
pub const SAMPLE_SECRET: &str = "app-secret-DO-NOT-LEAK-0123456789";
/// Trusted domain of the sample app unless changed with
/// [`Model::with_trusted_domain`]: the host of the example origin.
pub const SAMPLE_TRUSTED_DOMAIN: &str = "apps.example.com";

/// Everything the simulator knows about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    pub corps: Vec<Corp>,
}

/// A company (企业).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Corp {
    /// `corpid` / `appid`, e.g. `ww0123456789abcdef`.
    pub corp_id: String,
    /// Display name, shown on the login pages.
    pub name: String,
    /// Its self-built apps.
    pub agents: Vec<Agent>,
    /// Its members (通讯录).
    pub members: Vec<Member>,
    /// People who may open a login page but are not members (external WeChat users).
    pub non_members: Vec<NonMember>,
    /// The department tree (部门); department 1 is the root.
    pub departments: Vec<Department>,
    /// Tags (标签): members and whole departments.
    pub tags: Vec<Tag>,
}

/// A department (部门), as `department/simplelist` lists it (doc 95350).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Department {
    pub id: u32,
    pub name: String,
    /// 0 for the root.
    pub parentid: u32,
    pub order: u32,
}

/// A tag (标签), as `tag/get` answers it (doc 90213): members and departments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tag {
    pub tagid: u32,
    pub tagname: String,
    pub userlist: Vec<String>,
    pub partylist: Vec<u32>,
}

/// An app's callback in the console (接收消息 → API 接收).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackConfig {
    /// `http://host:port/path`: where WeCom POSTs.
    pub url: String,
    /// Token, letters and digits.
    pub token: String,
    /// EncodingAESKey, 43 characters.
    pub encoding_aes_key: String,
}

/// A self-built app (自建应用). Each app has its own secret, trusted domain and
/// trusted IPs in WeCom, so these live here rather than on the corp; an
/// `access_token` belongs to the app whose secret fetched it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    /// `agentid`, e.g. 1000002.
    pub agent_id: u32,
    pub name: String,
    /// `corpsecret` for `gettoken`.
    pub secret: String,
    /// The trusted domain (可信域名) / authorized callback domain: the exact
    /// `host[:port]` a `redirect_uri` must have, e.g. `apps.example.com` or
    /// `127.0.0.1:8080`. Compared case-insensitively, port included, no default-port folding.
    pub trusted_domain: String,
    /// 企业可信IP: `None` = no check; `Some(ips)` = API calls with this app's
    /// credentials or token from any other IP get 60020.
    pub trusted_ips: Option<Vec<IpAddr>>,
    /// The departments whose subtrees the app may read (its 可见范围 for the
    /// contacts): `None` = the whole company; outside it, `department/simplelist`
    /// and `tag/get` answer 60011.
    pub contact_range: Option<Vec<u32>>,
    /// Its callback URL, Token and EncodingAESKey (接收消息 → API 接收):
    /// contact changes made in the simulated console are POSTed
    /// there. None: no callbacks.
    pub callback: Option<CallbackConfig>,
}

/// `gender` as WeCom spells it: a string "0" / "1" / "2".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Gender {
    #[default]
    Unknown,
    Male,
    Female,
}

impl Gender {
    /// "0", "1" or "2".
    pub fn as_wecom(self) -> &'static str {
        match self {
            Gender::Unknown => "0",
            Gender::Male => "1",
            Gender::Female => "2",
        }
    }
}

/// A member (成员) of a corp. `Default` gives a visible, consenting member of
/// department 1 with no contact details: fill in what the test needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub userid: String,
    pub name: String,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub biz_mail: Option<String>,
    pub avatar: Option<String>,
    pub address: Option<String>,
    pub gender: Gender,
    pub department: Vec<u32>,
    pub position: String,
    pub alias: String,
    pub direct_leader: Vec<String>,
    /// In the visible range (可见范围) of the corp's apps. Outside: logins give
    /// a `userid` but never a `user_ticket`, and `user/get` answers 60011.
    pub visible: bool,
    /// Agrees on the privateinfo consent screen. If not, an in-client
    /// `snsapi_privateinfo` login still yields a `userid`, but no `user_ticket`.
    pub consents_to_privateinfo: bool,
    /// Disabled in the console (禁用): `user/get` says `status` 2.
    pub disabled: bool,
}

impl Default for Member {
    fn default() -> Self {
        Self {
            userid: String::new(),
            name: String::new(),
            mobile: None,
            email: None,
            biz_mail: None,
            avatar: None,
            address: None,
            gender: Gender::Unknown,
            department: vec![1],
            position: String::new(),
            alias: String::new(),
            direct_leader: Vec::new(),
            visible: true,
            consents_to_privateinfo: true,
            disabled: false,
        }
    }
}

impl Member {
    /// A visible, consenting member with just a userid and a name.
    pub fn new(userid: &str, name: &str) -> Self {
        Self {
            userid: userid.into(),
            name: name.into(),
            ..Self::default()
        }
    }
}

/// Someone who is not a member: an external WeChat user. Picking them on a
/// login page yields a code whose `getuserinfo` carries `openid` +
/// `external_userid` and no `userid`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NonMember {
    /// What the login page and [`crate::SimulatorHandle::login`] call them by.
    pub id: String,
    pub name: String,
    pub openid: String,
    pub external_userid: String,
}

impl Model {
    /// The sample company, for demos and tests:
    ///
    /// - corp `ww0123456789abcdef` "示例科技", app `1000002` "工作台" with secret
    ///   [`SAMPLE_SECRET`], trusted domain `apps.example.com` (change it with
    ///   [`Model::with_trusted_domain`]), no trusted-IP check;
    /// - `zhangsan` 张三: mobile `13800000000`, email `zhangsan@example.com`,
    ///   biz_mail `zhangsan@example.wecom.work`, avatar, address, male, visible, consents;
    /// - `lisi` 李四: mobile `13900000001`, email `lisi@example.com`, no biz_mail,
    ///   female, visible, consents;
    /// - `wangwu` 王五: mobile `13700000002`, visible, does NOT consent to privateinfo;
    /// - `zhaoliu` 赵六: mobile `13600000003`, consents, OUTSIDE the visible range;
    /// - departments 1 示例科技 (root) → 2 研发部 → 4 平台组, and 1 → 3 财务部;
    ///   zhangsan in 1 and 2 (main 1), lisi and wangwu in 1, zhaoliu in 3;
    /// - tag 7 运维 holding lisi and department 4 平台组;
    /// - non-member `outsider` 外部访客 (openid `oOutsider00000000000000000001`,
    ///   external_userid `wmOutsider0000000000000000000001`).
    pub fn sample() -> Self {
        let zhangsan = Member {
            userid: "zhangsan".into(),
            name: "张三".into(),
            mobile: Some("13800000000".into()),
            email: Some("zhangsan@example.com".into()),
            biz_mail: Some("zhangsan@example.wecom.work".into()),
            avatar: Some("https://wework.qpic.cn/wwpic/zhangsan/0".into()),
            address: Some("广州市海珠区新港中路".into()),
            gender: Gender::Male,
            department: vec![1, 2],
            position: "后台工程师".into(),
            alias: "jackzhang".into(),
            direct_leader: vec!["lisi".into()],
            ..Member::default()
        };
        let lisi = Member {
            userid: "lisi".into(),
            name: "李四".into(),
            mobile: Some("13900000001".into()),
            email: Some("lisi@example.com".into()),
            avatar: Some("https://wework.qpic.cn/wwpic/lisi/0".into()),
            gender: Gender::Female,
            position: "产品经理".into(),
            ..Member::default()
        };
        let wangwu = Member {
            userid: "wangwu".into(),
            name: "王五".into(),
            mobile: Some("13700000002".into()),
            gender: Gender::Male,
            consents_to_privateinfo: false,
            ..Member::default()
        };
        let zhaoliu = Member {
            userid: "zhaoliu".into(),
            name: "赵六".into(),
            mobile: Some("13600000003".into()),
            department: vec![3],
            visible: false,
            ..Member::default()
        };
        Self {
            corps: vec![Corp {
                corp_id: SAMPLE_CORP_ID.into(),
                name: "示例科技".into(),
                agents: vec![Agent {
                    agent_id: SAMPLE_AGENT_ID,
                    name: "工作台".into(),
                    secret: SAMPLE_SECRET.into(),
                    trusted_domain: SAMPLE_TRUSTED_DOMAIN.into(),
                    trusted_ips: None,
                    contact_range: None,
                    callback: None,
                }],
                members: vec![zhangsan, lisi, wangwu, zhaoliu],
                non_members: vec![NonMember {
                    id: "outsider".into(),
                    name: "外部访客".into(),
                    openid: "oOutsider00000000000000000001".into(),
                    external_userid: "wmOutsider0000000000000000000001".into(),
                }],
                departments: vec![
                    department(1, "示例科技", 0, 100_000_000),
                    department(2, "研发部", 1, 100_000_000),
                    department(3, "财务部", 1, 99_999_000),
                    department(4, "平台组", 2, 100_000_000),
                ],
                tags: vec![Tag {
                    tagid: 7,
                    tagname: "运维".into(),
                    userlist: vec!["lisi".into()],
                    partylist: vec![4],
                }],
            }],
        }
    }

    /// Sets the trusted domain (`host[:port]`) of every app.
    pub fn with_trusted_domain(mut self, domain: &str) -> Self {
        for agent in self.corps.iter_mut().flat_map(|c| c.agents.iter_mut()) {
            agent.trusted_domain = domain.into();
        }
        self
    }

    pub fn corp(&self, corp_id: &str) -> Option<&Corp> {
        self.corps.iter().find(|c| c.corp_id == corp_id)
    }

    pub fn corp_mut(&mut self, corp_id: &str) -> Option<&mut Corp> {
        self.corps.iter_mut().find(|c| c.corp_id == corp_id)
    }
}

fn department(id: u32, name: &str, parentid: u32, order: u32) -> Department {
    Department {
        id,
        name: name.into(),
        parentid,
        order,
    }
}

impl Corp {
    pub fn agent(&self, agent_id: u32) -> Option<&Agent> {
        self.agents.iter().find(|a| a.agent_id == agent_id)
    }

    pub fn member(&self, userid: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.userid == userid)
    }

    pub fn member_mut(&mut self, userid: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.userid == userid)
    }

    /// `id` and every department under it, in tree order (parent first).
    pub fn subtree(&self, id: u32) -> Vec<&Department> {
        let mut out: Vec<&Department> = self.departments.iter().filter(|d| d.id == id).collect();
        let mut at = 0;
        while at < out.len() {
            let parent = out[at].id;
            out.extend(
                self.departments
                    .iter()
                    .filter(|d| d.parentid == parent && d.id != parent),
            );
            at += 1;
        }
        out
    }

    /// Whether department `id` lies in `range` (a list of subtree roots).
    pub fn in_range(&self, id: u32, range: &[u32]) -> bool {
        let mut at = Some(id);
        let mut steps = 0;
        while let Some(current) = at {
            if range.contains(&current) {
                return true;
            }
            at = self
                .departments
                .iter()
                .find(|d| d.id == current)
                .map(|d| d.parentid)
                .filter(|p| *p != 0);
            steps += 1;
            if steps > self.departments.len() {
                return false;
            }
        }
        false
    }

    pub fn non_member(&self, id: &str) -> Option<&NonMember> {
        self.non_members.iter().find(|n| n.id == id)
    }
}
