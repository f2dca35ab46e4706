//! The operations on the server's (the model's) state, as every client eventually sees them: the POSIX semantics of each file operation.

use crate::model::world::OpCtx;
use racelab_lang::ir::{Errno, Op, Stat, Value};

use super::*;

impl ModelFs {
    /// The operation on the server's (the model's) state, as every client will eventually see it.
    pub(super) fn server(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        let path = path_arg_ref(args, 0, op)?;
        Ok(match op {
            Op::Create { excl } => {
                self.open_for_write(path_key(args, 0, &path), excl, None, cx.now)
            }
            Op::Write => {
                let data = data_arg(args.get(1));
                self.open_for_write(path_key(args, 0, &path), false, Some(data), cx.now)
            }
            Op::Read => match self.inode(&path) {
                None if path == "/" => Err(Errno::EISDIR),
                None => Err(self.missing(&path)),
                Some(Inode {
                    kind: Kind::Dir, ..
                }) => Err(Errno::EISDIR),
                Some(Inode {
                    kind: Kind::File(s),
                    ..
                }) => Ok(Value::Str(Arc::clone(s))),
            },
            Op::Link => {
                let to = path_arg_ref(args, 1, op)?;
                (|| {
                    let ino = *self.names.get(&*path).ok_or(Errno::ENOENT)?;
                    if self.inode_mut(ino).kind == Kind::Dir {
                        return Err(Errno::EPERM);
                    }
                    self.check_parent(&to)?;
                    if to == "/" || self.names.contains_key(&*to) {
                        return Err(Errno::EEXIST);
                    }
                    self.inode_mut(ino).nlink += 1;
                    self.names.insert(path_key(args, 1, &to), ino);
                    Ok(Value::None)
                })()
            }
            Op::Unlink => match self.names.get(&*path).copied() {
                None => Err(self.missing(&path)),
                Some(ino) if self.inode_mut(ino).kind == Kind::Dir => Err(Errno::EISDIR),
                Some(ino) => {
                    self.unlink_name(&path, ino);
                    Ok(Value::None)
                }
            },
            Op::Rename => {
                let to = path_arg(args, 1, op)?;
                self.rename(path.into_owned(), to)
            }
            Op::Stat => match self.names.get(&*path) {
                None if path == "/" => Ok(Value::Stat(Stat {
                    nlink: 2,
                    mtime: cx.now,
                    size: 4096,
                    ino: 2,
                    dir: true,
                })),
                None => Err(self.missing(&path)),
                Some(&ino) => Ok(self.stat_of(ino)),
            },
            Op::StatLookup => match self.names.get(&*path) {
                None if path == "/" => {
                    self.unpin(cx.actor);
                    self.pinned.insert(cx.actor, ROOT_PIN);
                    Ok(Value::None)
                }
                None => Err(self.missing(&path)),
                Some(&ino) => {
                    self.unpin(cx.actor);
                    self.pinned.insert(cx.actor, ino);
                    Ok(Value::None)
                }
            },
            Op::StatAttrs => {
                let Some(&ino) = self.pinned.get(&cx.actor) else {
                    return Err("stat's second half came without its lookup".into());
                };
                let v = if ino == ROOT_PIN {
                    Value::Stat(Stat {
                        nlink: 2,
                        mtime: cx.now,
                        size: 4096,
                        ino: 2,
                        dir: true,
                    })
                } else {
                    self.stat_of(ino)
                };
                self.unpin(cx.actor);
                Ok(v)
            }
            Op::WriteOpen => self
                .open_for_write(path_key(args, 0, &path), false, Some("".into()), cx.now)
                .inspect(|_| {
                    let ino = self.names[&*path];
                    self.unpin(cx.actor);
                    self.pinned.insert(cx.actor, ino);
                }),
            Op::WriteData => {
                let Some(&ino) = self.pinned.get(&cx.actor) else {
                    return Err("write's second half came without its open".into());
                };
                let data = data_arg(args.get(1));
                let node = self.inode_mut(ino);
                node.kind = Kind::File(data);
                node.mtime = cx.now;
                self.unpin(cx.actor);
                Ok(Value::None)
            }
            Op::Utime | Op::Touch => {
                let t = match (op, args.get(1)) {
                    (Op::Touch, _) => cx.now,
                    (_, Some(Value::Int(t))) => *t,
                    (_, other) => {
                        return Err(format!(
                            "utime expects a time (an int), got {}",
                            other.map_or("nothing", Value::type_name)
                        ))
                    }
                };
                match self.names.get(&*path) {
                    None => Err(self.missing(&path)),
                    Some(&ino) => {
                        self.inode_mut(ino).mtime = t;
                        Ok(Value::None)
                    }
                }
            }
            Op::Mkdir => {
                if path == "/" || self.names.contains_key(&*path) {
                    Err(Errno::EEXIST)
                } else {
                    self.check_parent(&path).map(|()| {
                        self.insert(path_key(args, 0, &path), Kind::Dir, cx.now);
                        Value::None
                    })
                }
            }
            Op::Glob => {
                let (dir, pattern) = split_glob(&path)?;
                let prefix = if dir == "/" {
                    "/".to_string()
                } else {
                    format!("{dir}/")
                };
                let count = self
                    .names
                    .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .filter(|(k, _)| {
                        let name = &k[prefix.len()..];
                        !name.is_empty() && !name.contains('/') && glob_matches(&pattern, name)
                    })
                    .count();
                Ok(Value::Int(count as i64))
            }
            Op::Rmdir => match self.names.get(&*path).copied() {
                None if path == "/" => Err(Errno::EBUSY),
                None => Err(Errno::ENOENT),
                Some(ino) if self.inode_mut(ino).kind != Kind::Dir => Err(Errno::ENOTDIR),
                Some(_) if self.has_children(&path) => Err(Errno::ENOTEMPTY),
                Some(ino) => {
                    self.unlink_name(&path, ino);
                    Ok(Value::None)
                }
            },
            other => return Err(format!("{} is not a filesystem operation", other.name())),
        })
    }
}
