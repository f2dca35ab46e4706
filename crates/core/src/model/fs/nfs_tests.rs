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
    assert_eq!(fs.other_answer(), None, "a live file has one answer");
    op(&mut fs, 1, Op::Unlink, std::slice::from_ref(&lock)).unwrap();
    // Client A still caches the name: the server's ENOENT, or the removed file's contents.
    assert_eq!(
        op(&mut fs, 0, Op::Read, std::slice::from_ref(&lock)),
        Err(Errno::ENOENT)
    );
    assert_eq!(fs.other_answer(), Some(Ok(Value::str("held by a"))));
    assert_eq!(fs.other_answer(), None, "taken once");
    // Client B removed it itself: its own cache says ENOENT, the only answer.
    assert_eq!(
        op(&mut fs, 1, Op::Read, std::slice::from_ref(&lock)),
        Err(Errno::ENOENT)
    );
    assert_eq!(fs.other_answer(), None);
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
    assert_eq!(fs.other_answer(), Some(Ok(Value::str("b"))));
    // Then B removes its claim: a utime through A's cached name of it may still succeed.
    op(&mut fs, 0, Op::Stat, std::slice::from_ref(&claim)).unwrap();
    op(&mut fs, 1, Op::Unlink, std::slice::from_ref(&claim)).unwrap();
    assert_eq!(
        op(&mut fs, 0, Op::Touch, std::slice::from_ref(&claim)),
        Err(Errno::ENOENT)
    );
    assert_eq!(fs.other_answer(), Some(Ok(Value::None)));
}
