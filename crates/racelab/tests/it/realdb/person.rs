//! Patchwork's person table on the real servers: translation per server, a missing server,
//! lost mails and none, a statement blocked in the server, real deadlocks and gap locks, and
//! stress runs of 1000 mails.

use racelab_real::backend::db::forced::forced_replay;
use racelab_real::backend::db::stress::stress;
use racelab_real::backend::db::{translate, translate_ddl, DbSpec, Dialect};

use super::{
    deadlock, force, mariadb, model_schedule, model_token, person, postgres, results, round_robin,
};

fn check_then_insert_loses_a_mail(spec: &DbSpec, duplicate: &str) {
    let prog = person("check-then-insert");
    let sched = model_token(&prog, "no_mail_lost");
    let r = force(&prog, &sched, spec);
    assert_eq!(r.divergence, None, "{}: {:#?}", spec.name(), results(&r));
    assert!(
        r.reproduced(&sched),
        "{}: no_mail_lost did not break: {:#?}",
        spec.name(),
        results(&r)
    );
    let lost = r
        .broken
        .iter()
        .find(|b| b.invariant == "no_mail_lost")
        .expect("broke");
    assert!(lost.message.contains("== 2 is false"), "{lost:?}");
    // The loser's INSERT failed with the real server's duplicate-key error.
    let all = results(&r);
    assert!(
        all.iter()
            .any(|s| s.contains("IntegrityError") && s.contains(duplicate)),
        "{}: no real IntegrityError `{duplicate}` in {all:#?}",
        spec.name()
    );
}

fn get_or_create_loses_none(spec: &DbSpec) {
    let prog = person("get-or-create");
    // The schedule of the race (both SELECTs first), and 20 more the model draws at random.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut scheds = vec![round_robin(&prog)];
    for _ in 0..20 {
        scheds.push(model_schedule(&prog, |_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        }));
    }
    let mut lost_races = 0;
    for sched in &scheds {
        let r = force(&prog, sched, spec);
        assert_eq!(r.divergence, None, "{}: {:#?}", spec.name(), results(&r));
        assert!(
            r.broken.is_empty(),
            "{}: {:?} broke: {:#?}",
            spec.name(),
            r.broken,
            results(&r)
        );
        lost_races += results(&r)
            .iter()
            .filter(|s| s.contains("IntegrityError"))
            .count();
    }
    // The race was really run: some INSERT lost it and get_or_create() recovered.
    assert!(
        lost_races > 0,
        "{}: no schedule made an INSERT lose the race",
        spec.name()
    );
}

#[test]
fn placeholders_and_ddl_are_translated_per_server() {
    let sql = "SELECT a FROM t WHERE b = ? AND c = '?' AND d = %s";
    assert_eq!(
        translate(sql, Dialect::Postgres),
        (
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2".to_string(),
            vec![0, 1]
        )
    );
    assert_eq!(
        translate(sql, Dialect::MariaDb).0,
        "SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?"
    );
    assert_eq!(
        translate("UPDATE t SET a = $2 WHERE id = $1", Dialect::Sqlite),
        ("UPDATE t SET a = ? WHERE id = ?".to_string(), vec![1, 0])
    );
    let ddl = "CREATE TABLE s (id INTEGER PRIMARY KEY AUTO_INCREMENT, msgid TEXT)";
    assert_eq!(
        translate_ddl(ddl, Dialect::Postgres),
        "CREATE TABLE s (id SERIAL PRIMARY KEY, msgid TEXT)"
    );
    assert_eq!(
        translate_ddl(ddl, Dialect::Sqlite),
        "CREATE TABLE s (id INTEGER PRIMARY KEY AUTOINCREMENT, msgid TEXT)"
    );
}

#[test]
fn a_server_that_is_not_there_is_an_error_that_says_what_to_do() {
    let prog = person("check-then-insert");
    let sched = model_token(&prog, "no_mail_lost");
    let spec = DbSpec::parse("postgres=host=127.0.0.1 port=1 user=nobody connect_timeout=2")
        .expect("parses");
    let e = forced_replay(&prog, &sched, &spec)
        .expect_err("nothing listens on port 1")
        .to_string();
    assert!(
        e.contains("cannot connect to PostgreSQL") && e.contains("cargo xtask db up"),
        "{e}"
    );
    let e = DbSpec::parse("db:oracle").expect_err("unknown");
    assert!(e.message().contains("db:sqlite"), "{e}");
    assert_eq!(e.kind(), racelab_core::error::ErrorKind::BadInput, "{e}");
}

#[test]
fn sqlite_check_then_insert_loses_a_mail() {
    check_then_insert_loses_a_mail(&DbSpec::Sqlite, "UNIQUE constraint failed: person.email");
}

#[test]
fn sqlite_get_or_create_loses_none() {
    get_or_create_loses_none(&DbSpec::Sqlite);
}

#[test]
fn postgres_check_then_insert_loses_a_mail() {
    check_then_insert_loses_a_mail(
        &postgres(),
        "duplicate key value violates unique constraint \"person_email_key\"",
    );
}

#[test]
fn postgres_get_or_create_loses_none() {
    get_or_create_loses_none(&postgres());
}

#[test]
fn mariadb_check_then_insert_loses_a_mail() {
    check_then_insert_loses_a_mail(
        &mariadb(),
        "(1062, 'Duplicate entry 'new.contributor@example.org' for key 'email'')",
    );
}

#[test]
fn mariadb_get_or_create_loses_none() {
    get_or_create_loses_none(&mariadb());
}

/// In a transaction, the second INSERT waits in the server for the first transaction: the
/// replay sees it waiting (from pg_locks), moves on, and collects its IntegrityError later.
#[test]
fn postgres_a_statement_that_waits_in_the_server_is_blocked_then_completes() {
    let prog = person("in-a-transaction");
    let sched = model_token(&prog, "no_mail_lost");
    let r = force(&prog, &sched, &postgres());
    assert_eq!(r.divergence, None, "{:#?}", results(&r));
    assert!(r.reproduced(&sched), "{:#?}", results(&r));
    let all = results(&r);
    let waited = all
        .iter()
        .position(|s| {
            s.contains("<waiting")
                && s.contains("pg_locks: transactionid")
                && s.contains("is locked by parser")
        })
        .unwrap_or_else(|| panic!("no wait in {all:#?}"));
    let completed = all[waited + 1..]
        .iter()
        .find(|s| s.contains("<... completed>"))
        .unwrap_or_else(|| panic!("no completion in {all:#?}"));
    assert!(
        completed.contains("IntegrityError duplicate key value violates unique constraint"),
        "{completed}"
    );
    assert_eq!(r.env.isolation_level, "read committed");
    assert!(
        r.env.server_version.starts_with("PostgreSQL "),
        "{:?}",
        r.env
    );
}

/// Patchwork's Patch(...).save() on real InnoDB: the two UPDATEs of missing keys take gap
/// locks, the INSERTs wait for each other, and the server kills one with a real 1213.
#[test]
fn mariadb_save_gets_a_real_1213_and_objects_create_does_not() {
    let spec = mariadb();
    let prog = deadlock("save");
    let sched = model_token(&prog, "no_mail_lost");
    let r = force(&prog, &sched, &spec);
    let all = results(&r);
    assert_eq!(r.divergence, None, "{all:#?}");
    assert!(r.reproduced(&sched), "{all:#?}");
    assert!(all.iter().any(|s| s.contains("OperationalError (1213, 'Deadlock found when trying to get lock; try restarting transaction')")), "{all:#?}");
    assert!(
        all.iter()
            .any(|s| s.contains("<waiting> InnoDB: X RECORD lock on")),
        "{all:#?}"
    );
    assert_eq!(r.env.isolation_level, "repeatable read");

    let prog = deadlock("objects-create");
    for sched in [round_robin(&prog), model_schedule(&prog, |_| 0)] {
        let r = force(&prog, &sched, &spec);
        let all = results(&r);
        assert_eq!(r.divergence, None, "{all:#?}");
        assert!(r.broken.is_empty(), "{:?}: {all:#?}", r.broken);
        assert!(
            !all.iter()
                .any(|s| s.contains("1213") || s.contains("<waiting")),
            "{all:#?}"
        );
    }
}

/// The same statements on PostgreSQL: an UPDATE that matches no row locks nothing, so the
/// INSERTs never wait and no mail is lost. The model (InnoDB rules) said the first INSERT
/// waits: the replay reports exactly that step as a divergence.
#[test]
fn postgres_save_takes_no_gap_lock_and_diverges_from_the_innodb_model() {
    let prog = deadlock("save");
    let sched = model_token(&prog, "no_mail_lost");
    let r = force(&prog, &sched, &postgres());
    let d = r
        .divergence
        .clone()
        .unwrap_or_else(|| panic!("no divergence: {:#?}", results(&r)));
    assert!(d.operation.starts_with("sql(\"INSERT INTO patch"), "{d:?}");
    assert_eq!(
        (d.model.as_str(), d.real.as_str()),
        ("blocked", "1"),
        "{d:?}"
    );
    assert!(
        !results(&r)
            .iter()
            .any(|s| s.contains("1213") || s.contains("deadlock")),
        "{:#?}",
        results(&r)
    );
}

/// 500 free runs of two parsers = 1,000 mails: get-or-create loses none; check-then-insert,
/// run the same way, does lose mails, so the runs really race.
fn stress_person(spec: &DbSpec) {
    let fixed = stress(&person("get-or-create"), spec, 500, 2, 7)
        .unwrap_or_else(|e| panic!("{}: {e}", spec.name()));
    assert_eq!(fixed.runs, 500);
    let lost = fixed
        .rates
        .iter()
        .find(|r| r.invariant == "no_mail_lost")
        .expect("rate");
    assert_eq!(
        lost.hits,
        0,
        "{}: get-or-create lost mails: {:?}",
        spec.name(),
        fixed.rates
    );
    assert!(lost.high < 0.01, "{:?}", lost);
    let racy = stress(&person("check-then-insert"), spec, 200, 2, 7)
        .unwrap_or_else(|e| panic!("{}: {e}", spec.name()));
    let lost = racy
        .rates
        .iter()
        .find(|r| r.invariant == "no_mail_lost")
        .expect("rate");
    assert!(
        lost.hits > 0,
        "{}: check-then-insert lost no mail in 200 free runs: {:?}",
        spec.name(),
        racy.rates
    );
    assert!(racy.first_failure.is_some());
}

#[test]
fn sqlite_stress_get_or_create_loses_none_of_1000_mails() {
    stress_person(&DbSpec::Sqlite);
}

#[test]
fn postgres_stress_get_or_create_loses_none_of_1000_mails() {
    stress_person(&postgres());
}

#[test]
fn mariadb_stress_get_or_create_loses_none_of_1000_mails() {
    stress_person(&mariadb());
}
