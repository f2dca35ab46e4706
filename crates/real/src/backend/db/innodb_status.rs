//! Reads lock waits from `SHOW ENGINE INNODB STATUS`, which InnoDB writes afresh on every call,
//! unlike the information_schema lock tables behind a cache that refreshes at most every 100 ms.
//!
//! The status names the waiting session and the lock it waits for, but not who holds it. So a
//! wait is answered from here only when exactly one other transaction holds locks; with more
//! candidates the caller asks the exact (cached) lock-wait tables instead.

/// One transaction of the status's TRANSACTIONS section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Txn {
    /// The session (`MariaDB thread id N` / `MySQL thread id N`).
    pub thread: u64,
    /// How many lock structs it holds or waits for.
    pub lock_structs: u64,
    /// The lock it waits for, in InnoDB's words, when its state is LOCK WAIT.
    pub waiting_for: Option<String>,
}

/// The transactions listed in `status` (the third column of SHOW ENGINE INNODB STATUS).
pub(super) fn transactions(status: &str) -> Vec<Txn> {
    let Some(start) = status.find("LIST OF TRANSACTIONS FOR EACH SESSION:") else {
        return Vec::new();
    };
    let section = &status[start..];
    let section = section
        .find("\n--------\nFILE I/O")
        .map_or(section, |end| &section[..end]);
    section
        .split("---TRANSACTION ")
        .skip(1)
        .filter_map(transaction)
        .collect()
}

fn transaction(block: &str) -> Option<Txn> {
    let thread = block.lines().find_map(|l| {
        let rest = l
            .strip_prefix("MariaDB thread id ")
            .or_else(|| l.strip_prefix("MySQL thread id "))?;
        rest.split(',').next()?.trim().parse().ok()
    })?;
    let lock_structs = block
        .lines()
        .find_map(|l| {
            let at = l.find(" lock struct(s)")?;
            let head = &l[..at];
            head.rsplit(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let waiting = block.lines().any(|l| l.starts_with("LOCK WAIT"));
    let waiting_for = waiting.then(|| {
        let mut lines = block.lines();
        lines
            .find(|l| l.contains("FOR THIS LOCK TO BE GRANTED"))
            .and_then(|_| lines.next())
            .map(describe)
            .unwrap_or_else(|| "a lock".to_string())
    });
    Some(Txn {
        thread,
        lock_structs,
        waiting_for,
    })
}

/// "RECORD LOCKS space id 0 page no 783 n bits 320 index email of table `db`.`person` trx id
/// 39654 lock mode S waiting" becomes "S RECORD lock on `db`.`person` index email", the words of
/// the lock-wait tables; what follows the mode ("locks gap before rec insert intention") is
/// kept in parentheses.
fn describe(line: &str) -> String {
    let after = |key: &str| line.find(key).map(|at| &line[at + key.len()..]);
    let word = |key: &str| after(key).and_then(|rest| rest.split(' ').next());
    let kind = if line.starts_with("TABLE LOCK") {
        "TABLE"
    } else {
        "RECORD"
    };
    let Some(mode) = after("lock_mode ").or_else(|| after("lock mode ")) else {
        return line.trim().to_string();
    };
    let mode = mode.trim_end_matches(" waiting");
    let (mode, detail) = mode.split_once(' ').unwrap_or((mode, ""));
    let mut out = format!("{mode} {kind} lock");
    if let Some(table) = word(" of table ").or_else(|| word(" table ")) {
        out.push_str(&format!(" on {table}"));
    }
    if let Some(index) = word(" index ") {
        out.push_str(&format!(" index {index}"));
    }
    if !detail.is_empty() {
        out.push_str(&format!(" ({detail})"));
    }
    out
}

/// Who session `id` waits for, when the status settles it: it is in LOCK WAIT and exactly one
/// of `peers` holds locks. `None` when it does not wait, or the status cannot say who.
///
/// `peers` are the other sessions of the same run. The status lists every transaction on the
/// server, also those of parallel stress jobs, which work in databases of their own and so
/// cannot hold this run's locks; counting them sent most waits to the slow path when two jobs
/// ran at once. (racelab's own connections to the run's database hold no locks: the reset
/// connection is idle during a run and the monitor reads without locking.)
pub(super) fn sole_blocker(txns: &[Txn], id: u64, peers: &[u64]) -> Option<(u64, String)> {
    let me = txns.iter().find(|t| t.thread == id)?;
    let lock = me.waiting_for.clone()?;
    let mut holders = txns
        .iter()
        .filter(|t| t.thread != id && t.lock_structs > 0 && peers.contains(&t.thread));
    let holder = holders.next()?;
    holders.next().is_none().then_some((holder.thread, lock))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed by MariaDB 10.11 while session 8990's INSERT waits for 8989's uncommitted key.
    const STATUS: &str = "=====================================
TRANSACTIONS
------------
Trx id counter 39655
Purge done for trx's n:o < 39653 undo n:o < 0 state: running but idle
History list length 0
LIST OF TRANSACTIONS FOR EACH SESSION:
---TRANSACTION 39654, ACTIVE 0 sec inserting
mysql tables in use 1, locked 1
LOCK WAIT 2 lock struct(s), heap size 1128, 1 row lock(s), undo log entries 1
MariaDB thread id 8990, OS thread handle 140116317345472, query id 49538 127.0.0.1 root Update
INSERT INTO person VALUES (6,'b','z@x')
------- TRX HAS BEEN WAITING 21714 us FOR THIS LOCK TO BE GRANTED:
RECORD LOCKS space id 0 page no 783 n bits 320 index email of table `bench`.`person` trx id 39654 lock mode S waiting
Record lock, heap no 3 PHYSICAL RECORD: n_fields 2; compact format; info bits 0
 0: len 3; hex 7a4078; asc z@x;;

------------------
---TRANSACTION 39653, ACTIVE 0 sec
2 lock struct(s), heap size 1128, 1 row lock(s), undo log entries 1
MariaDB thread id 8989, OS thread handle 140116530869952, query id 49536 127.0.0.1 root User sleep
SELECT SLEEP(2)
---TRANSACTION (0x7f6f5c1f2b80), not started
0 lock struct(s), heap size 1128, 0 row lock(s)
MariaDB thread id 8991, OS thread handle 140116530869953, query id 49539 127.0.0.1 root starting
SHOW ENGINE INNODB STATUS
--------
FILE I/O
--------
";

    #[test]
    fn the_waiter_its_lock_and_its_only_possible_holder() {
        let txns = transactions(STATUS);
        assert_eq!(txns.len(), 3);
        assert_eq!(txns[1].waiting_for, None);
        assert_eq!(txns[2].lock_structs, 0);
        assert_eq!(
            sole_blocker(&txns, 8990, &[8989, 8991]),
            Some((
                8989,
                "S RECORD lock on `bench`.`person` index email".to_string()
            ))
        );
        assert_eq!(sole_blocker(&txns, 8989, &[8990, 8991]), None);
    }

    #[test]
    fn a_gap_wait_keeps_its_kind() {
        let line = "RECORD LOCKS space id 5 page no 3 n bits 72 index PRIMARY of table `db`.`patch` trx id 7 lock_mode X locks gap before rec insert intention waiting";
        assert_eq!(
            describe(line),
            "X RECORD lock on `db`.`patch` index PRIMARY (locks gap before rec insert intention)"
        );
    }

    #[test]
    fn two_possible_holders_leave_the_question_open() {
        let extra = STATUS.replace(
            "---TRANSACTION (0x7f6f5c1f2b80), not started\n0 lock struct(s)",
            "---TRANSACTION 39660, ACTIVE 0 sec\n1 lock struct(s)",
        );
        assert_eq!(
            sole_blocker(&transactions(&extra), 8990, &[8989, 8991]),
            None
        );
    }

    #[test]
    fn transactions_of_other_runs_are_not_candidates() {
        let other_run = STATUS.replace(
            "---TRANSACTION (0x7f6f5c1f2b80), not started\n0 lock struct(s)",
            "---TRANSACTION 39660, ACTIVE 0 sec\n1 lock struct(s)",
        );
        assert_eq!(
            sole_blocker(&transactions(&other_run), 8990, &[8989]),
            Some((
                8989,
                "S RECORD lock on `bench`.`person` index email".to_string()
            ))
        );
    }
}
