//! Who may enter: access rules by WeCom member (`userid`), department and
//! tag, evaluated over what WeCom tells of the member. A department rule
//! covers the department's whole subtree unless written exact (`=12`); a
//! tag covers its members and the subtrees of its departments. Deny wins
//! over allow; with no allow rule, every member the app may see is allowed.
//!
//! The facts come from WeCom's own APIs: the member's departments
//! (`user/get` → `department`, doc 90196), the tree (`department/simplelist`,
//! doc 95350) and tag members (`tag/get` → `userlist`, `partylist`, doc
//! 90213). Fetching and caching them is the caller's; this module is pure.

/// One department rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepartmentRule {
    pub id: u32,
    /// Only the department itself, not its subtree.
    pub exact: bool,
}

/// Members, departments and tags a rule names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// WeCom userids, lowercase (userids compare ignoring ASCII case).
    pub users: Vec<String>,
    pub departments: Vec<DepartmentRule>,
    pub tags: Vec<u32>,
}

impl RuleSet {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.departments.is_empty() && self.tags.is_empty()
    }

    /// Parses `users`, `departments` and `tags` as comma-separated lists
    /// ([`split_list`]): userids, department ids (`=id` for the department
    /// alone), tag ids. Errors name the list and the entry.
    pub fn parse(users: &str, departments: &str, tags: &str) -> Result<RuleSet, String> {
        Ok(RuleSet {
            users: parse_users(&split_list(users))?,
            departments: parse_departments(&split_list(departments))?,
            tags: parse_tags(&split_list(tags))?,
        })
    }

    /// The first class of rule that matches the member, if any.
    fn matched(&self, facts: &Facts) -> Option<RuleClass> {
        if self
            .users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&facts.userid))
        {
            return Some(RuleClass::User);
        }
        let ancestry = facts.ancestry();
        let in_department = self.departments.iter().any(|rule| {
            if rule.exact {
                facts.departments.contains(&rule.id)
            } else {
                ancestry.contains(&rule.id)
            }
        });
        if in_department {
            return Some(RuleClass::Department);
        }
        let in_tag = self.tags.iter().any(|tag| {
            facts
                .tags
                .iter()
                .any(|t| t.tagid == *tag && facts.holds(t, &ancestry))
        });
        in_tag.then_some(RuleClass::Tag)
    }
}

/// The entries of a comma-separated list (a variable, a query parameter),
/// trimmed, empty ones left out; a list of blanks only (`" , "`) is one
/// blank entry, refused by the parsers, never "no rule". Lists given as
/// lists (the typed API) are never split: `"alice,bob"` is one entry.
pub fn split_list(text: &str) -> Vec<String> {
    let blank_only = !text.trim().is_empty() && text.split(',').all(|i| i.trim().is_empty());
    let mut entries: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect();
    if blank_only {
        entries.push(String::new());
    }
    entries
}

/// WeCom userids (at most 64 bytes of `[A-Za-z0-9_.@-]`, doc 90195),
/// lowercased. The error names the entry.
pub fn parse_users<S: AsRef<str>>(entries: &[S]) -> Result<Vec<String>, String> {
    entries
        .iter()
        .map(|user| {
            let user = user.as_ref().trim();
            let valid = !user.is_empty()
                && user.len() <= 64
                && user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b));
            if valid {
                Ok(user.to_ascii_lowercase())
            } else {
                Err(format!("users: {user:?} is not a WeCom userid"))
            }
        })
        .collect()
}

/// Department ids, `=id` for the department alone. The error names the
/// entry.
pub fn parse_departments<S: AsRef<str>>(entries: &[S]) -> Result<Vec<DepartmentRule>, String> {
    entries
        .iter()
        .map(|department| {
            let department = department.as_ref().trim();
            let (exact, id) = match department.strip_prefix('=') {
                Some(id) => (true, id),
                None => (false, department),
            };
            let id = id.parse::<u32>().map_err(|_| {
                format!(
                    "departments: {department:?} is not a department id (12, or =12 for 12 alone)"
                )
            })?;
            Ok(DepartmentRule { id, exact })
        })
        .collect()
}

/// Tag ids. The error names the entry.
pub fn parse_tags<S: AsRef<str>>(entries: &[S]) -> Result<Vec<u32>, String> {
    entries
        .iter()
        .map(|tag| {
            let tag = tag.as_ref().trim();
            tag.parse::<u32>()
                .map_err(|_| format!("tags: {tag:?} is not a tag id"))
        })
        .collect()
}

/// Allow and deny rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub allow: RuleSet,
    pub deny: RuleSet,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether evaluating needs the member's departments and the tree.
    pub fn needs_departments(&self) -> bool {
        !self.allow.departments.is_empty() || !self.deny.departments.is_empty() || self.needs_tags()
    }

    /// The tag ids whose members evaluating needs.
    pub fn needs_tags(&self) -> bool {
        !self.allow.tags.is_empty() || !self.deny.tags.is_empty()
    }

    /// Allowed, or which class of rule refused the member.
    pub fn evaluate(&self, facts: &Facts) -> Verdict {
        if let Some(class) = self.deny.matched(facts) {
            return Verdict::Denied(Refusal::DeniedBy(class));
        }
        if self.allow.is_empty() || self.allow.matched(facts).is_some() {
            Verdict::Allowed
        } else {
            Verdict::Denied(Refusal::NotAllowed)
        }
    }
}

/// Who may enter, and what the identity tells of the member's groups: one
/// authenticator's checked settings for both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub rules: Rules,
    /// How old WeCom's facts (departments, tags) may be, in seconds: a
    /// member moved out of a department loses access (and the group) at
    /// most this much later.
    pub facts_max_age: u64,
    pub groups: GroupKinds,
}

impl Access {
    /// Whether the rules or the groups need the member's departments.
    pub fn needs_departments(&self) -> bool {
        self.rules.needs_departments() || self.groups.any()
    }
}

/// The default of [`Access::facts_max_age`], in seconds.
pub const DEFAULT_FACTS_MAX_AGE: u64 = 300;
/// The bounds of [`Access::facts_max_age`]: below 30 s every `/verify`
/// would ask WeCom, sharing the company's quota with the logins.
pub const FACTS_MAX_AGE_RANGE: (u32, u32) = (30, 86_400);

/// A class of rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleClass {
    User,
    Department,
    Tag,
}

/// Why a member was refused: a deny rule of a class matched, or no allow
/// rule did. Never names other members or the rule's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    DeniedBy(RuleClass),
    NotAllowed,
}

impl Refusal {
    /// `denied-by-user`, `denied-by-department`, `denied-by-tag`,
    /// `not-allowed`: as the WIT `access-refusal` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::DeniedBy(RuleClass::User) => "denied-by-user",
            Refusal::DeniedBy(RuleClass::Department) => "denied-by-department",
            Refusal::DeniedBy(RuleClass::Tag) => "denied-by-tag",
            Refusal::NotAllowed => "not-allowed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied(Refusal),
}

/// The members and departments of a tag (`tag/get`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagMembers {
    pub tagid: u32,
    /// `tagname`, when WeCom gave it.
    pub name: Option<String>,
    pub users: Vec<String>,
    pub departments: Vec<u32>,
}

/// Which of the member's groups the identity carries (setting `groups`:
/// `departments`, `tags`). Tags cost `tag/list` and a `tag/get` per tag
/// when not cached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupKinds {
    pub departments: bool,
    pub tags: bool,
}

impl GroupKinds {
    pub fn any(self) -> bool {
        self.departments || self.tags
    }

    /// `departments`, `tags`, comma-separated, any case; the error names
    /// the entry.
    pub fn parse(list: &str) -> Result<GroupKinds, String> {
        let mut kinds = GroupKinds::default();
        for item in split_list(list) {
            match item.to_ascii_lowercase().as_str() {
                "departments" => kinds.departments = true,
                "tags" => kinds.tags = true,
                _ => return Err(format!("{item:?} is not departments or tags")),
            }
        }
        Ok(kinds)
    }
}

/// The kind of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Department,
    Tag,
}

/// One of the member's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub kind: GroupKind,
    pub id: u32,
    /// The name WeCom gives (tags: `tagname`; `department/simplelist`
    /// gives no department names).
    pub name: Option<String>,
}

impl Group {
    /// `dept:<id>` or `tag:<id>`: how the group headers name it.
    pub fn key(&self) -> String {
        match self.kind {
            GroupKind::Department => format!("dept:{}", self.id),
            GroupKind::Tag => format!("tag:{}", self.id),
        }
    }
}

/// What WeCom tells of a member, for the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub userid: String,
    /// The member's departments (`user/get` → `department`).
    pub departments: Vec<u32>,
    /// The tree as `(id, parentid)` pairs (`department/simplelist`).
    pub tree: Vec<(u32, u32)>,
    /// The tags the rules name.
    pub tags: Vec<TagMembers>,
}

impl Facts {
    /// Whether the tree holds every department of the member and every
    /// department above them, up to the root: else a deny rule on an
    /// ancestor could not match.
    pub fn is_complete(&self) -> bool {
        // Every member is in a department: none told is nothing known.
        !self.departments.is_empty()
            && self.departments.iter().all(|&start| {
                let mut at = start;
                for _ in 0..=self.tree.len() {
                    match self.tree.iter().find(|(node, _)| *node == at) {
                        Some((_, 0)) => return true,
                        Some((_, parent)) if *parent != at => at = *parent,
                        _ => return false,
                    }
                }
                false
            })
    }

    /// Whether `deny`'s department rules (and the departments of its tags)
    /// can be judged on an incomplete tree: each subtree rule names a
    /// department the tree holds. WeCom shows an app whole subtrees of its
    /// visible range, so a department the tree holds has its whole subtree
    /// there: the member is under it exactly when the walk up meets it.
    pub fn can_place(&self, deny: &RuleSet) -> bool {
        let held = |id: &u32| self.tree.iter().any(|(node, _)| node == id);
        let judged_by_tree = !deny.departments.is_empty() || !deny.tags.is_empty();
        // The member's own departments must be in the tree: one missing may
        // be new (the cached tree older than it) and under a denied one.
        // No department told at all: nothing can be judged.
        if judged_by_tree && (self.departments.is_empty() || !self.departments.iter().all(held)) {
            return false;
        }
        let departments = deny
            .departments
            .iter()
            .filter(|rule| !rule.exact)
            .all(|rule| held(&rule.id));
        let tags = self
            .tags
            .iter()
            .filter(|t| deny.tags.contains(&t.tagid))
            .all(|t| t.departments.iter().all(held));
        departments && tags
    }

    /// The member's groups of the kinds asked for: `dept:<id>` for each
    /// department the member is in or under (so `dept:2` means what the
    /// rule `2` means), then `tag:<id>` for each tag of [`Facts::tags`]
    /// holding the member or a department above them, with its name.
    pub fn groups(&self, kinds: GroupKinds) -> Vec<Group> {
        let ancestry = self.ancestry();
        let mut groups = Vec::new();
        if kinds.departments {
            groups.extend(ancestry.iter().map(|&id| Group {
                kind: GroupKind::Department,
                id,
                name: None,
            }));
        }
        if kinds.tags {
            groups.extend(
                self.tags
                    .iter()
                    .filter(|t| self.holds(t, &ancestry))
                    .map(|t| Group {
                        kind: GroupKind::Tag,
                        id: t.tagid,
                        name: t.name.clone(),
                    }),
            );
        }
        groups
    }

    /// Whether `tag` holds the member, or a department of `ancestry` (the
    /// member's departments and those above them).
    fn holds(&self, tag: &TagMembers, ancestry: &[u32]) -> bool {
        tag.users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&self.userid))
            || tag.departments.iter().any(|d| ancestry.contains(d))
    }

    /// The same facts about this member, reduced to what concerns them:
    /// the tree to the departments on the member's way up, each tag to
    /// whether it holds the member. Rules and groups judge the reduced facts
    /// as the whole (and `is_complete` agrees), but for `can_place`, which
    /// needs the whole tree.
    pub fn reduced(&self) -> Facts {
        let ancestry = self.ancestry();
        Facts {
            userid: self.userid.clone(),
            departments: self.departments.clone(),
            tree: self
                .tree
                .iter()
                .filter(|(id, _)| ancestry.contains(id))
                .copied()
                .collect(),
            tags: self
                .tags
                .iter()
                .map(|t| TagMembers {
                    tagid: t.tagid,
                    name: t.name.clone(),
                    users: if self.holds(t, &ancestry) {
                        vec![self.userid.clone()]
                    } else {
                        Vec::new()
                    },
                    departments: Vec::new(),
                })
                .collect(),
        }
    }

    /// The member's departments and every department above them.
    fn ancestry(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for &start in &self.departments {
            let mut at = Some(start);
            // A malformed tree (a loop) stops after as many steps as nodes.
            for _ in 0..=self.tree.len() {
                let Some(id) = at else { break };
                if !out.contains(&id) {
                    out.push(id);
                }
                at = self
                    .tree
                    .iter()
                    .find(|(node, _)| *node == id)
                    .map(|(_, parent)| *parent)
                    .filter(|parent| *parent != 0 && *parent != id);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulator's sample tree: 1 → 2 → 4, 1 → 3; tag 7 holds lisi and 4.
    fn facts(userid: &str, departments: &[u32]) -> Facts {
        Facts {
            userid: userid.into(),
            departments: departments.to_vec(),
            tree: vec![(1, 0), (2, 1), (3, 1), (4, 2)],
            tags: vec![TagMembers {
                tagid: 7,
                name: Some("运维".into()),
                users: vec!["lisi".into()],
                departments: vec![4],
            }],
        }
    }

    fn rules(allow: (&str, &str, &str), deny: (&str, &str, &str)) -> Rules {
        Rules {
            allow: RuleSet::parse(allow.0, allow.1, allow.2).unwrap(),
            deny: RuleSet::parse(deny.0, deny.1, deny.2).unwrap(),
        }
    }

    #[test]
    fn each_class_allows_and_denies_and_deny_wins() {
        let none = ("", "", "");
        let engineer = facts("ZhangSan", &[4]);
        let finance = facts("zhaoliu", &[3]);
        let tagged = facts("lisi", &[1]);
        // No rule: everyone.
        assert_eq!(Rules::default().evaluate(&finance), Verdict::Allowed);
        // By user, any case.
        let by_user = rules(("zhangsan,wangwu", "", ""), none);
        assert_eq!(by_user.evaluate(&engineer), Verdict::Allowed);
        assert_eq!(
            by_user.evaluate(&finance),
            Verdict::Denied(Refusal::NotAllowed)
        );
        // By department: 2 covers its subtree (4), =2 only 2 itself.
        assert_eq!(
            rules(("", "2", ""), none).evaluate(&engineer),
            Verdict::Allowed
        );
        assert_eq!(
            rules(("", "=2", ""), none).evaluate(&engineer),
            Verdict::Denied(Refusal::NotAllowed)
        );
        assert_eq!(
            rules(("", "2", ""), none).evaluate(&finance),
            Verdict::Denied(Refusal::NotAllowed)
        );
        // By tag: a member of the tag, or under one of its departments.
        let by_tag = rules(("", "", "7"), none);
        assert_eq!(by_tag.evaluate(&tagged), Verdict::Allowed);
        assert_eq!(by_tag.evaluate(&engineer), Verdict::Allowed);
        assert_eq!(
            by_tag.evaluate(&finance),
            Verdict::Denied(Refusal::NotAllowed)
        );
        // Deny wins over allow, and says which class refused.
        let everyone_but = rules(("", "1", ""), ("", "", "7"));
        assert_eq!(
            everyone_but.evaluate(&engineer),
            Verdict::Denied(Refusal::DeniedBy(RuleClass::Tag))
        );
        assert_eq!(everyone_but.evaluate(&finance), Verdict::Allowed);
        assert_eq!(
            rules(none, ("zhaoliu", "", "")).evaluate(&finance),
            Verdict::Denied(Refusal::DeniedBy(RuleClass::User))
        );
        assert_eq!(
            rules(none, ("", "2", "")).evaluate(&engineer),
            Verdict::Denied(Refusal::DeniedBy(RuleClass::Department))
        );
    }

    #[test]
    fn lists_parse_or_name_the_bad_entry() {
        let set = RuleSet::parse(" ZhangSan , lisi ", "12, =34", "7").unwrap();
        assert_eq!(set.users, ["zhangsan", "lisi"]);
        assert_eq!(
            set.departments,
            [
                DepartmentRule {
                    id: 12,
                    exact: false
                },
                DepartmentRule {
                    id: 34,
                    exact: true
                }
            ]
        );
        assert_eq!(set.tags, [7]);
        assert!(RuleSet::parse("", "", "").unwrap().is_empty());
        // Blanks only are a mistake, not "no rule".
        assert!(RuleSet::parse(" , ", "", "").is_err());
        assert!(RuleSet::parse("", ",", "").is_err());
        let e = RuleSet::parse("", "12,finance", "").unwrap_err();
        assert!(e.contains("departments") && e.contains("finance"), "{e}");
        assert!(RuleSet::parse("a b", "", "").unwrap_err().contains("users"));
        assert!(RuleSet::parse("", "", "x").unwrap_err().contains("tags"));
    }

    #[test]
    fn a_tree_missing_a_department_or_an_ancestor_is_incomplete() {
        assert!(facts("a", &[4]).is_complete());
        assert!(!facts("a", &[]).is_complete(), "no department told");
        let mut lacking = facts("a", &[5]);
        assert!(!lacking.is_complete(), "5 is not in the tree");
        lacking.tree = vec![(5, 2)];
        assert!(!lacking.is_complete(), "5's parent 2 is not in the tree");
    }

    #[test]
    fn groups_are_the_departments_above_and_the_tags_holding_the_member() {
        let both = GroupKinds::parse("Departments, tags").unwrap();
        let keys = |f: &Facts, kinds| {
            f.groups(kinds)
                .iter()
                .map(Group::key)
                .collect::<Vec<String>>()
        };
        // zhangsan in 4 (under 2 under 1), tag 7 through department 4.
        assert_eq!(
            keys(&facts("zhangsan", &[4]), both),
            ["dept:4", "dept:2", "dept:1", "tag:7"]
        );
        let tagged = facts("LiSi", &[3]).groups(both);
        assert_eq!(tagged.last().unwrap().name.as_deref(), Some("运维"));
        assert_eq!(keys(&facts("zhaoliu", &[3]), both), ["dept:3", "dept:1"]);
        let only_tags = GroupKinds::parse("tags").unwrap();
        assert_eq!(
            keys(&facts("zhaoliu", &[3]), only_tags),
            Vec::<String>::new()
        );
        assert!(!GroupKinds::parse("").unwrap().any());
        assert!(GroupKinds::parse("roles").unwrap_err().contains("roles"));
    }

    /// A visible range of 财务部 (3) alone: the tree is `3 → 1`, 1 unseen.
    #[test]
    fn an_incomplete_tree_judges_deny_rules_on_departments_it_holds() {
        let mut partial = facts("zhaoliu", &[3]);
        partial.tree = vec![(3, 1)];
        assert!(!partial.is_complete());
        let deny = |departments: &str, tags: &str| RuleSet::parse("", departments, tags).unwrap();
        assert!(partial.can_place(&deny("3", "")), "3 is held");
        assert!(partial.can_place(&deny("=2", "")), "exact: no tree needed");
        assert!(!partial.can_place(&deny("2", "")), "2 is not held");
        assert!(
            !partial.can_place(&deny("", "7")),
            "tag 7 holds 4, not held"
        );
        assert!(partial.can_place(&deny("", "")));
        // The member's own department missing (new since the tree was
        // cached): it may be under a denied one.
        let mut stale = facts("wangwu", &[5]);
        stale.tree = vec![(1, 0), (2, 1), (3, 1), (4, 2)];
        assert!(!stale.can_place(&deny("2", "")));
        // No department told: nothing to judge on.
        let mut unknown = facts("x", &[]);
        unknown.tree = vec![(1, 0), (2, 1)];
        assert!(!unknown.can_place(&deny("2", "")));
        assert!(!unknown.can_place(&deny("=2", "")));
    }

    /// Every rule and the groups judge the reduced facts as the whole.
    #[test]
    fn reduced_facts_judge_as_the_whole() {
        let kinds = GroupKinds::parse("departments,tags").unwrap();
        for (userid, departments) in [
            ("zhangsan", &[4][..]),
            ("lisi", &[1]),
            ("zhaoliu", &[3]),
            ("x", &[5]),
        ] {
            let whole = facts(userid, departments);
            let reduced = whole.reduced();
            assert_eq!(reduced.is_complete(), whole.is_complete(), "{userid}");
            assert_eq!(reduced.groups(kinds), whole.groups(kinds), "{userid}");
            for (allow, deny) in [
                (("", "2", ""), ("", "", "")),
                (("", "=2", ""), ("", "", "")),
                (("", "", "7"), ("", "", "")),
                (("", "1", ""), ("", "", "7")),
                (("", "1", ""), ("", "3", "")),
                (("lisi", "", ""), ("", "", "")),
            ] {
                let rules = rules(allow, deny);
                assert_eq!(
                    rules.evaluate(&reduced),
                    rules.evaluate(&whole),
                    "{userid} {allow:?} {deny:?}"
                );
            }
        }
    }

    #[test]
    fn a_looping_tree_ends_the_walk() {
        let mut looped = facts("x", &[5]);
        looped.tree = vec![(5, 6), (6, 5)];
        assert_eq!(looped.ancestry(), [5, 6]);
    }
}
