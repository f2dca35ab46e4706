//! The NFS client model's rules, each as a real two-client forced replay showed it.
use super::*;

const T0: i64 = 1_000_000;

/// Actors 0 and 2 on client A, actor 1 on client B; a lock directory.
fn two_clients() -> ModelFs {
    let mut fs = ModelFs::new();
    fs.set_nfs(60_000, vec![0, 1, 0]);
    fs.mkdir_all("/l", T0);
    fs
}

fn op(fs: &mut ModelFs, actor: usize, op: Op, args: &[Value]) -> Result<Value, Errno> {
    fs.perform(op, args, &OpCtx { now: T0, actor })
        .expect("a well-formed operation")
}

fn stat(fs: &mut ModelFs, actor: usize, path: &str) -> Result<(i64, i64), Errno> {
    match op(fs, actor, Op::Stat, &[Value::str(path)])? {
        Value::Stat(s) => Ok((s.nlink, s.mtime)),
        other => panic!("stat gave {other:?}"),
    }
}

fn nlink_of(v: Result<Value, Errno>) -> Result<i64, Errno> {
    match v? {
        Value::Stat(s) => Ok(s.nlink),
        other => panic!("fstat gave {other:?}"),
    }
}

#[test]
fn an_unlink_of_a_file_open_on_the_client_is_a_silly_rename_until_its_last_close_there() {
    let mut fs = two_clients();
    let lock = Value::str("/l/lock");
    let fd0 = op(
        &mut fs,
        0,
        Op::Open { creat: true },
        std::slice::from_ref(&lock),
    )
    .unwrap();
    let fd1 = op(
        &mut fs,
        1,
        Op::Open { creat: true },
        std::slice::from_ref(&lock),
    )
    .unwrap();
    let fd2 = op(
        &mut fs,
        2,
        Op::Open { creat: true },
        std::slice::from_ref(&lock),
    )
    .unwrap();
    op(&mut fs, 0, Op::Unlink, std::slice::from_ref(&lock)).unwrap();
    assert!(!fs.exists("/l/lock"));
    let silly: Vec<String> = fs
        .names
        .keys()
        .filter(|p| is_silly_name(p))
        .map(|p| p.to_string())
        .collect();
    assert_eq!(silly.len(), 1, "{:?}", fs.names);
    // Every client reads nlink 1: the file still has its .nfs name.
    assert_eq!(
        nlink_of(op(&mut fs, 1, Op::Fstat, std::slice::from_ref(&fd1))),
        Ok(1)
    );
    // Actor 2 on the same client still has it open: the name stays.
    op(&mut fs, 0, Op::CloseFd, &[fd0]).unwrap();
    assert_eq!(
        nlink_of(op(&mut fs, 2, Op::Fstat, std::slice::from_ref(&fd2))),
        Ok(1)
    );
    // The client's last descriptor closes: it removes the .nfs name, and client B's
    // handle is stale.
    op(&mut fs, 2, Op::CloseFd, &[fd2]).unwrap();
    assert!(!fs.exists(&silly[0]));
    assert_eq!(
        nlink_of(op(&mut fs, 1, Op::Fstat, &[fd1])),
        Err(Errno::ESTALE)
    );
}

#[test]
fn the_other_client_keeps_the_link_count_it_fetched() {
    let mut fs = two_clients();
    op(
        &mut fs,
        0,
        Op::Write,
        &[Value::str("/l/tmp"), Value::str("x")],
    )
    .unwrap();
    assert_eq!(stat(&mut fs, 1, "/l/tmp").unwrap().0, 1);
    op(
        &mut fs,
        0,
        Op::Link,
        &[Value::str("/l/tmp"), Value::str("/l/lock")],
    )
    .unwrap();
    assert_eq!(
        stat(&mut fs, 0, "/l/tmp").unwrap().0,
        2,
        "client A saw its reply"
    );
    assert_eq!(stat(&mut fs, 1, "/l/tmp").unwrap().0, 1, "client B's cache");
    // Opening the file revalidates it (close-to-open).
    op(&mut fs, 1, Op::Read, &[Value::str("/l/tmp")]).unwrap();
    assert_eq!(stat(&mut fs, 1, "/l/tmp").unwrap().0, 2);
}

#[test]
fn attributes_are_cached_per_file_not_per_name() {
    let mut fs = two_clients();
    op(
        &mut fs,
        0,
        Op::Write,
        &[Value::str("/l/tmp"), Value::str("x")],
    )
    .unwrap();
    op(
        &mut fs,
        0,
        Op::Link,
        &[Value::str("/l/tmp"), Value::str("/l/lock")],
    )
    .unwrap();
    assert_eq!(stat(&mut fs, 2, "/l/lock").unwrap().1, T0);
    // Actor 0 touches the file through its other name; actor 2 shares client A's cache.
    op(
        &mut fs,
        0,
        Op::Utime,
        &[Value::str("/l/tmp"), Value::Int(T0 + 15_000)],
    )
    .unwrap();
    assert_eq!(stat(&mut fs, 2, "/l/lock").unwrap().1, T0 + 15_000);
}

#[test]
fn a_cached_missing_name_is_enoent_without_asking_the_server() {
    let mut fs = two_clients();
    op(
        &mut fs,
        0,
        Op::Write,
        &[Value::str("/l/a"), Value::str("a")],
    )
    .unwrap();
    op(
        &mut fs,
        0,
        Op::Link,
        &[Value::str("/l/a"), Value::str("/l/lock")],
    )
    .unwrap();
    op(&mut fs, 0, Op::Unlink, &[Value::str("/l/lock")]).unwrap();
    // Client B links a new lock file; client A still has "missing" for the name.
    op(
        &mut fs,
        1,
        Op::Write,
        &[Value::str("/l/b"), Value::str("b")],
    )
    .unwrap();
    op(
        &mut fs,
        1,
        Op::Link,
        &[Value::str("/l/b"), Value::str("/l/lock")],
    )
    .unwrap();
    let lock = || [Value::str("/l/lock"), Value::Int(T0 + 1)];
    assert_eq!(op(&mut fs, 2, Op::Utime, &lock()), Err(Errno::ENOENT));
    assert_eq!(
        op(&mut fs, 2, Op::Read, &[Value::str("/l/lock")]),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        op(&mut fs, 2, Op::Unlink, &[Value::str("/l/lock")]),
        Err(Errno::ENOENT)
    );
    assert!(
        fs.observe_exists("/l/lock"),
        "the server's lock file is untouched"
    );
    // Creating goes to the server whatever the client cached.
    assert_eq!(
        op(
            &mut fs,
            2,
            Op::Link,
            &[Value::str("/l/a"), Value::str("/l/lock")]
        ),
        Err(Errno::EEXIST)
    );
    // ... and the reply refreshed the name: now client A sees B's lock.
    assert_eq!(
        op(&mut fs, 2, Op::Read, &[Value::str("/l/lock")]),
        Ok(Value::str("b"))
    );
}

#[test]
fn a_stat_through_a_name_whose_file_is_gone_looks_the_name_up_again() {
    let mut fs = two_clients();
    op(
        &mut fs,
        0,
        Op::Write,
        &[Value::str("/l/a"), Value::str("a")],
    )
    .unwrap();
    assert_eq!(stat(&mut fs, 1, "/l/a").unwrap().0, 1);
    op(&mut fs, 0, Op::Unlink, &[Value::str("/l/a")]).unwrap();
    // Fresh attributes for a file the server has freed: B answers from its cache.
    assert_eq!(stat(&mut fs, 1, "/l/a").unwrap().0, 1);
    // Once they are stale, GETATTR says ESTALE and the kernel looks the name up: ENOENT.
    let later = OpCtx {
        now: T0 + 60_000,
        actor: 1,
    };
    assert_eq!(
        fs.perform(Op::Stat, &[Value::str("/l/a")], &later).unwrap(),
        Err(Errno::ENOENT)
    );
}

#[test]
fn a_read_through_a_cached_name_of_a_file_another_client_removed_may_give_its_old_contents() {
    let mut fs = two_clients();
    let lock = Value::str("/l/lock");
    let write = [lock.clone(), Value::str("held by a")];
    op(&mut fs, 0, Op::Write, &write).unwrap();
    assert_eq!(
        op(&mut fs, 0, Op::Read, std::slice::from_ref(&lock)),
        Ok(Value::str("held by a"))
    );
    assert_eq!(fs.other_answers(), [], "a live file has one answer");
    op(&mut fs, 1, Op::Unlink, std::slice::from_ref(&lock)).unwrap();
    // Client A still caches the name: the server's ENOENT, or the removed file's contents.
    assert_eq!(
        op(&mut fs, 0, Op::Read, std::slice::from_ref(&lock)),
        Err(Errno::ENOENT)
    );
    assert_eq!(fs.other_answers(), [Ok(Value::str("held by a"))]);
    assert_eq!(fs.other_answers(), [], "taken once");
    // Client B removed it itself: its own cache says ENOENT, the only answer.
    assert_eq!(
        op(&mut fs, 1, Op::Read, std::slice::from_ref(&lock)),
        Err(Errno::ENOENT)
    );
    assert_eq!(fs.other_answers(), []);
}

#[test]
fn a_read_through_a_cached_name_another_client_unlinked_may_reach_the_file_by_its_handle() {
    let mut fs = two_clients();
    let (claim, lock) = (Value::str("/l/claim.b"), Value::str("/l/lock"));
    op(&mut fs, 1, Op::Write, &[claim.clone(), Value::str("b")]).unwrap();
    op(&mut fs, 1, Op::Link, &[claim.clone(), lock.clone()]).unwrap();
    assert_eq!(
        op(&mut fs, 0, Op::Read, std::slice::from_ref(&lock)),
        Ok(Value::str("b"))
    );
    // B unlinks the lock; the file lives on under B's claim name. A's cached name still
    // leads to it by handle, or A looks the name up again.
    op(&mut fs, 1, Op::Unlink, std::slice::from_ref(&lock)).unwrap();
    assert_eq!(
        op(&mut fs, 0, Op::Read, std::slice::from_ref(&lock)),
        Err(Errno::ENOENT)
    );
    assert_eq!(fs.other_answers(), [Ok(Value::str("b"))]);
    // Then B removes its claim: a utime through A's cached name of it may still succeed.
    op(&mut fs, 0, Op::Stat, std::slice::from_ref(&claim)).unwrap();
    op(&mut fs, 1, Op::Unlink, std::slice::from_ref(&claim)).unwrap();
    assert_eq!(
        op(&mut fs, 0, Op::Touch, std::slice::from_ref(&claim)),
        Err(Errno::ENOENT)
    );
    assert_eq!(fs.other_answers(), [Ok(Value::None)]);
}

#[test]
fn a_stat_through_a_cached_name_another_client_relinked_may_answer_for_either_file() {
    let mut fs = two_clients();
    let (old, new, lock) = (
        Value::str("/l/claim.old"),
        Value::str("/l/claim.new"),
        Value::str("/l/lock"),
    );
    op(&mut fs, 0, Op::Write, &[old.clone(), Value::str("old")]).unwrap();
    op(&mut fs, 0, Op::Link, &[old.clone(), lock.clone()]).unwrap();
    assert_eq!(
        stat(&mut fs, 1, "/l/lock"),
        Ok((2, T0)),
        "B caches the name"
    );
    assert_eq!(
        fs.other_answers(),
        [],
        "a name the server still gives has one answer"
    );
    // A breaks the lock and takes it again with a new claim, a second later.
    let a_later = OpCtx {
        now: T0 + 1_000,
        actor: 0,
    };
    for (o, args) in [
        (Op::Unlink, vec![lock.clone()]),
        (Op::Unlink, vec![old.clone()]),
        (Op::Write, vec![new.clone(), Value::str("new")]),
        (Op::Link, vec![new.clone(), lock.clone()]),
    ] {
        fs.perform(o, &args, &a_later).unwrap().unwrap();
    }
    // B still maps LOCKFILE to the removed claim: its cached attributes (NFSv4.2, measured),
    // or the new lock's, looked up again (NFSv3 after an ESTALE, measured).
    assert_eq!(stat(&mut fs, 1, "/l/lock"), Ok((2, T0)));
    match &fs.other_answers()[..] {
        [Ok(Value::Stat(s))] => assert_eq!((s.nlink, s.mtime), (2, T0 + 1_000)),
        other => panic!("expected the new lock's attributes as the other answer, got {other:?}"),
    }
}

#[test]
fn an_fstat_of_a_file_the_server_no_longer_names_may_be_stale_unlinked_or_as_last_seen() {
    let mut fs = two_clients();
    let lock = Value::str("/l/lock");
    // A (actor 0) and B (actor 1) open the lock file; A unlinks it while it has it open (a
    // silly rename), then closes: its client removes the `.nfs` name, the last one.
    let fd_a = op(
        &mut fs,
        0,
        Op::Open { creat: true },
        std::slice::from_ref(&lock),
    )
    .unwrap();
    let fd_b = op(
        &mut fs,
        1,
        Op::Open { creat: true },
        std::slice::from_ref(&lock),
    )
    .unwrap();
    assert_eq!(
        nlink_of(op(&mut fs, 1, Op::Fstat, std::slice::from_ref(&fd_b))),
        Ok(1)
    );
    op(&mut fs, 0, Op::Unlink, std::slice::from_ref(&lock)).unwrap();
    op(&mut fs, 0, Op::CloseFd, &[fd_a]).unwrap();
    // NFSv3's GETATTR: ESTALE; NFSv4.2 keeps B's open file: nlink 0; or what B last saw: 1.
    assert_eq!(
        op(&mut fs, 1, Op::Fstat, std::slice::from_ref(&fd_b)),
        Err(Errno::ESTALE)
    );
    let others: Vec<Result<i64, Errno>> = fs.other_answers().into_iter().map(nlink_of).collect();
    assert_eq!(others, [Ok(0), Ok(1)]);
}

#[test]
fn a_flock_after_another_clients_release_may_be_refused_until_the_server_sees_it() {
    let mut fs = two_clients();
    let lock = Value::str("/l/lock");
    let open = |fs: &mut ModelFs, actor| {
        op(
            fs,
            actor,
            Op::Open { creat: true },
            std::slice::from_ref(&lock),
        )
        .unwrap()
    };
    let (fd_a, fd_b) = (open(&mut fs, 0), open(&mut fs, 1));
    let flock = |fs: &mut ModelFs, actor, fd: &Value, unlock| {
        op(fs, actor, Op::Flock { unlock }, std::slice::from_ref(fd))
    };
    assert_eq!(flock(&mut fs, 0, &fd_a, false), Ok(Value::None));
    assert_eq!(fs.other_answers(), [], "nothing was released");
    assert_eq!(flock(&mut fs, 0, &fd_a, true), Ok(Value::None));
    // A's UNLOCK may not have reached the server: B's LOCK is granted, or refused.
    assert_eq!(flock(&mut fs, 1, &fd_b, false), Ok(Value::None));
    assert_eq!(fs.other_answers(), [Err(Errno::EAGAIN)]);
    // The engine chose the refusal: B holds nothing, and A can lock again.
    fs.answer_taken(1);
    assert_eq!(flock(&mut fs, 0, &fd_a, false), Ok(Value::None));
    assert_eq!(
        fs.other_answers(),
        [],
        "A's own next call: its UNLOCK was answered"
    );
    assert_eq!(flock(&mut fs, 1, &fd_b, false), Err(Errno::EAGAIN));
}

#[test]
fn a_stat_past_the_cache_lifetime_may_still_answer_from_the_cache() {
    // A 3 s cache, as nfs-two-clients.race has: stale past 3 s, and trusted at most 60 s.
    let mut fs = ModelFs::new();
    fs.set_nfs(3_000, vec![0, 1, 0]);
    fs.mkdir_all("/l", T0);
    // B looks for a file that is not there yet: a negative entry.
    assert_eq!(stat(&mut fs, 1, "/l/file"), Err(Errno::ENOENT));
    op(
        &mut fs,
        0,
        Op::Write,
        &[Value::str("/l/file"), Value::str("x")],
    )
    .unwrap();
    // Ten seconds later the model's cache has let the entry go: the server's answer; but the
    // kernel may not have revalidated yet: the stale ENOENT is allowed too.
    let later = OpCtx {
        now: T0 + 10_000,
        actor: 1,
    };
    let first = fs
        .perform(Op::Stat, &[Value::str("/l/file")], &later)
        .unwrap();
    assert!(
        matches!(first, Ok(Value::Stat(_))),
        "the server's answer first: {first:?}"
    );
    assert_eq!(fs.other_answers(), [Err(Errno::ENOENT)]);
    // The engine chose the stale answer: the client did not look the name up, so its next
    // stat has both answers again (a lookup would have left it one).
    fs.answer_taken(1);
    let stat_at = |fs: &mut ModelFs, ms: i64| {
        let cx = OpCtx {
            now: T0 + ms,
            actor: 1,
        };
        fs.perform(Op::Stat, &[Value::str("/l/file")], &cx)
    };
    assert!(matches!(stat_at(&mut fs, 10_000), Ok(Ok(Value::Stat(_)))));
    assert_eq!(fs.other_answers(), [Err(Errno::ENOENT)]);
    fs.answer_taken(1);
    // Past a minute after its lookup no Linux client trusts the entry: the server's answer only.
    assert!(matches!(stat_at(&mut fs, 61_000), Ok(Ok(Value::Stat(_)))));
    assert_eq!(fs.other_answers(), []);
}
