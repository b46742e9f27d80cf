//! Who may do what: roles and the skill groups a supervisor is responsible for. Policy only;
//! the SIP core and the API ask it.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// What a user may do. Agents take calls; supervisors also monitor (listen, whisper, barge)
/// the agents of the skill groups they supervise; admins may do everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Agent,
    Supervisor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// One member of staff as the access rules see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Staff {
    pub role: Role,
    /// The skill groups the member works in.
    pub skills: BTreeSet<String>,
    /// The skill groups a supervisor is responsible for.
    pub supervises: BTreeSet<String>,
}

/// Why an action is refused, for the log and the refusal's reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    UnknownUser,
    UnknownAgent,
    NotASupervisor,
    /// A supervisor of other skill groups.
    NotTheirGroup,
    Themselves,
}

impl Denied {
    pub fn as_str(self) -> &'static str {
        match self {
            Denied::UnknownUser => "unknown user",
            Denied::UnknownAgent => "unknown agent",
            Denied::NotASupervisor => "not a supervisor",
            Denied::NotTheirGroup => "agent outside the supervisor's groups",
            Denied::Themselves => "cannot monitor oneself",
        }
    }
}

/// The staff by user name (the agent extension).
#[derive(Debug, Clone, Default)]
pub struct Access {
    staff: HashMap<String, Staff>,
    /// Queues and the skill group each serves.
    queues: Vec<(String, String)>,
}

impl Access {
    pub fn new(staff: impl IntoIterator<Item = (String, Staff)>) -> Access {
        Access {
            staff: staff.into_iter().collect(),
            queues: Vec::new(),
        }
    }

    /// Names the queues (and their skill groups) so [`Access::queues_of`] can answer.
    pub fn with_queues(mut self, queues: impl IntoIterator<Item = (String, String)>) -> Access {
        self.queues = queues.into_iter().collect();
        self
    }

    /// The queues `user` works in or supervises (admins: all), in configuration order.
    pub fn queues_of(&self, user: &str) -> Vec<String> {
        let Some(s) = self.staff.get(user) else {
            return Vec::new();
        };
        self.queues
            .iter()
            .filter(|(_, skill)| {
                s.role == Role::Admin || s.skills.contains(skill) || s.supervises.contains(skill)
            })
            .map(|(q, _)| q.clone())
            .collect()
    }

    pub fn role(&self, user: &str) -> Option<Role> {
        self.staff.get(user).map(|s| s.role)
    }

    /// May `supervisor` listen to, whisper to or barge into `agent`'s calls? Admins may monitor
    /// anyone; a supervisor the agents who share one of the groups they supervise; agents
    /// nobody.
    pub fn may_monitor(&self, supervisor: &str, agent: &str) -> Result<(), Denied> {
        let s = self.staff.get(supervisor).ok_or(Denied::UnknownUser)?;
        let a = self.staff.get(agent).ok_or(Denied::UnknownAgent)?;
        if supervisor == agent {
            return Err(Denied::Themselves);
        }
        match s.role {
            Role::Admin => Ok(()),
            Role::Agent => Err(Denied::NotASupervisor),
            Role::Supervisor if s.supervises.intersection(&a.skills).next().is_some() => Ok(()),
            Role::Supervisor => Err(Denied::NotTheirGroup),
        }
    }
}

impl Access {
    /// May `user` see `agent`'s calls and recordings? Admins all; supervisors the agents of
    /// their groups; everybody their own.
    pub fn oversees(&self, user: &str, agent: &str) -> bool {
        user == agent
            || match self.staff.get(user).map(|s| s.role) {
                Some(Role::Admin) => true,
                Some(Role::Supervisor) => self.may_monitor(user, agent).is_ok(),
                _ => false,
            }
    }

    /// The agents (role agent) `user` oversees, by extension: a supervisor's wall.
    pub fn agents_of(&self, user: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .staff
            .iter()
            .filter(|(name, s)| s.role == Role::Agent && self.oversees(user, name))
            .map(|(name, _)| name.clone())
            .collect();
        v.sort();
        v
    }

    /// Every skill group: those queues serve and those staff work in or supervise.
    pub fn skills(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.queues.iter().map(|(_, s)| s.clone()).collect();
        for s in self.staff.values() {
            all.extend(s.skills.iter().cloned());
            all.extend(s.supervises.iter().cloned());
        }
        all
    }

    /// Does `user` work in the skill group `skill`?
    pub fn works_in(&self, user: &str, skill: &str) -> bool {
        self.staff
            .get(user)
            .is_some_and(|s| s.skills.contains(skill))
    }

    /// Is `user` responsible for the skill group `skill`: an admin, or its supervisor?
    pub fn runs(&self, user: &str, skill: &str) -> bool {
        self.staff
            .get(user)
            .is_some_and(|s| s.role == Role::Admin || s.supervises.contains(skill))
    }

    /// The supervisors and admins who oversee `agent`: whom news of their work goes to.
    pub fn overseers_of(&self, agent: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .staff
            .iter()
            .filter(|(name, s)| {
                s.role != Role::Agent && name.as_str() != agent && self.oversees(name, agent)
            })
            .map(|(name, _)| name.clone())
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(role: Role, skills: &[&str], supervises: &[&str]) -> Staff {
        Staff {
            role,
            skills: skills.iter().map(|s| s.to_string()).collect(),
            supervises: supervises.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn access() -> Access {
        Access::new([
            ("1001".into(), staff(Role::Agent, &["sales"], &[])),
            ("2001".into(), staff(Role::Agent, &["service"], &[])),
            (
                "2002".into(),
                staff(Role::Agent, &["service", "sales"], &[]),
            ),
            ("9001".into(), staff(Role::Supervisor, &[], &["sales"])),
            (
                "9002".into(),
                staff(Role::Supervisor, &["sales"], &["sales"]),
            ),
            ("9000".into(), staff(Role::Admin, &[], &[])),
        ])
    }

    #[test]
    fn supervisors_monitor_their_groups_admins_anyone_agents_nobody() {
        let a = access();
        assert_eq!(a.may_monitor("9001", "1001"), Ok(()));
        assert_eq!(
            a.may_monitor("9001", "2002"),
            Ok(()),
            "one shared group is enough"
        );
        assert_eq!(a.may_monitor("9001", "2001"), Err(Denied::NotTheirGroup));
        assert_eq!(a.may_monitor("9000", "2001"), Ok(()));
        assert_eq!(a.may_monitor("9000", "9001"), Ok(()));
        assert_eq!(a.may_monitor("1001", "2002"), Err(Denied::NotASupervisor));
        assert_eq!(a.may_monitor("2002", "1001"), Err(Denied::NotASupervisor));
        assert_eq!(a.may_monitor("9002", "9002"), Err(Denied::Themselves));
        assert_eq!(a.may_monitor("7777", "1001"), Err(Denied::UnknownUser));
        assert_eq!(a.may_monitor("9001", "7777"), Err(Denied::UnknownAgent));
    }

    #[test]
    fn everybody_oversees_themselves_supervisors_their_groups_admins_all() {
        let a = access();
        assert!(a.oversees("1001", "1001"));
        assert!(!a.oversees("1001", "2002"));
        assert!(a.oversees("9001", "1001"));
        assert!(!a.oversees("9001", "2001"));
        assert!(a.oversees("9000", "2001"));
        assert!(a.oversees("9000", "+4930123"), "external numbers too");
        assert!(!a.oversees("9001", "+4930123"));
    }
}
