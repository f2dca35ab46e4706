//! A minimal writer for the kernel's initramfs format (cpio "newc", uncompressed): directories, files and device nodes, no external tool.

use std::io::Write;

/// An initramfs being built in memory.
#[derive(Default)]
pub(crate) struct Archive {
    bytes: Vec<u8>,
    ino: u32,
}

impl Archive {
    pub fn dir(&mut self, path: &str) {
        self.entry(path, 0o040_755, 0, &[]);
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.entry(path, 0o100_000 | mode, 0, data);
    }

    /// A character device node (the kernel needs `/dev/console` to give init its stdio).
    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        self.entry(path, 0o020_600, (major << 8) | minor, &[]);
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 0, &[]);
        self.bytes
    }

    fn entry(&mut self, path: &str, mode: u32, rdev: u32, data: &[u8]) {
        self.ino += 1;
        let name_len = u32::try_from(path.len() + 1).unwrap_or(u32::MAX);
        let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            size,
            0,
            0,
            rdev >> 8,
            rdev & 0xff,
            name_len,
            0,
        ];
        let _ = write!(self.bytes, "070701");
        for f in fields {
            let _ = write!(self.bytes, "{f:08x}");
        }
        self.bytes.extend_from_slice(path.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    /// newc aligns every header and every file's data to 4 bytes.
    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Archive;

    #[test]
    fn entries_are_newc_headers_with_aligned_names_and_data() {
        let mut a = Archive::default();
        a.file("init", 0o755, b"#!/bin/sh\n");
        let bytes = a.finish();
        assert!(bytes.starts_with(b"070701"));
        // 6 + 13 * 8 = 110 header bytes, then "init\0" padded to 116, then the data.
        assert_eq!(&bytes[110..115], b"init\0");
        assert_eq!(&bytes[116..126], b"#!/bin/sh\n");
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
