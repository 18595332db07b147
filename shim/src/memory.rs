//! Reading and writing another process's memory (a guest's, at the host).

use std::io::{IoSlice, IoSliceMut};

use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

const PAGE: usize = 4096;

/// How much of each string of an array is read in the first pass: most
/// arguments and environment strings are shorter.
const STRING_PEEK: usize = 256;

/// Most remote ranges one `process_vm_readv` takes (the kernel's `IOV_MAX`).
const RANGES_AT_ONCE: usize = 1024;

/// Errors touching a guest's memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The range is not (fully) mapped in the guest, or the guest is gone.
    #[error("guest memory at {addr:#x} ({len} bytes) is not accessible: {errno}")]
    Fault {
        /// Start of the range.
        addr: u64,
        /// Its length.
        len: usize,
        /// What the kernel said.
        errno: nix::Error,
    },
    /// A string ran past the allowed length without a terminator.
    #[error("string at {addr:#x} is longer than {max} bytes")]
    StringTooLong {
        /// Where it starts.
        addr: u64,
        /// The limit.
        max: usize,
    },
    /// A NULL-terminated array ran past the allowed number of entries.
    #[error("array at {addr:#x} has more than {most} entries")]
    ArrayTooLong {
        /// Where it starts.
        addr: u64,
        /// The limit.
        most: usize,
    },
}

/// The memory of process `pid`.
#[derive(Debug, Clone, Copy)]
pub struct ProcessMemory {
    pid: Pid,
}

impl ProcessMemory {
    /// The memory of `pid` (the caller needs ptrace access to it).
    pub fn new(pid: i32) -> Self {
        Self {
            pid: Pid::from_raw(pid),
        }
    }

    /// Reads exactly `len` bytes at `addr`. They go into spare capacity:
    /// zeroing a megabyte first (a migration reads a gigabyte so) would
    /// only be overwritten.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, MemoryError> {
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let done = buf.len();
            let n = self
                .read_into_spare(addr + done as u64, &mut buf)
                .map_err(|errno| MemoryError::Fault { addr, len, errno })?;
            if n == 0 {
                return Err(MemoryError::Fault {
                    addr,
                    len,
                    errno: nix::Error::EFAULT,
                });
            }
            // SAFETY: the kernel wrote `n` bytes just past the `done`
            // already there, within the capacity it was given.
            unsafe { buf.set_len(done + n) };
        }
        Ok(buf)
    }

    /// Reads at `addr` into the spare capacity of `buf`, as much as fits
    /// or can be read; returns the bytes read (not yet in `buf`'s length).
    fn read_into_spare(&self, addr: u64, buf: &mut Vec<u8>) -> Result<usize, nix::Error> {
        let spare = buf.spare_capacity_mut();
        let local = libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: spare.len(),
        };
        // SAFETY: `local` covers `buf`'s spare capacity, which the kernel
        // may write (uninitialised bytes are fine to overwrite); `remote`
        // names memory of the other process, which the kernel checks.
        let n = unsafe { libc::process_vm_readv(self.pid.as_raw(), &local, 1, &remote, 1, 0) };
        nix::errno::Errno::result(n).map(|n| n as usize)
    }

    /// Reads a NUL-terminated string at `addr`, terminator included, of at most `max` bytes.
    pub fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, MemoryError> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            // Never read across a page boundary in one go: the next page may be unmapped.
            let to_page_end = PAGE - (at as usize % PAGE);
            let chunk = to_page_end.min(max - out.len());
            let bytes = self.read(at, chunk)?;
            if let Some(nul) = bytes.iter().position(|&b| b == 0) {
                out.extend_from_slice(&bytes[..=nul]);
                return Ok(out);
            }
            out.extend_from_slice(&bytes);
            at += chunk as u64;
        }
        Err(MemoryError::StringTooLong { addr, max })
    }

    /// The strings of a NULL-terminated array of C string pointers at
    /// `addr` (an `execve`'s argv or envp), each without its terminator,
    /// of at most `most` entries and `max` bytes each. A few reads in all,
    /// not two per string: the pointers a page at a time, then the first
    /// bytes of every string in one vectored read (a shell's environment
    /// has dozens), and a string longer than that on its own.
    pub fn read_cstr_array(
        &self,
        addr: u64,
        most: usize,
        max: usize,
    ) -> Result<Vec<Vec<u8>>, MemoryError> {
        let pointers = self.read_pointers(addr, most)?;
        let mut strings = Vec::with_capacity(pointers.len());
        for batch in pointers.chunks(RANGES_AT_ONCE) {
            let ranges: Vec<RemoteIoVec> = batch
                .iter()
                .map(|&at| RemoteIoVec {
                    base: at as usize,
                    len: STRING_PEEK.min(PAGE - at as usize % PAGE).min(max),
                })
                .collect();
            let mut peeked = vec![0u8; ranges.iter().map(|r| r.len).sum()];
            // A range that faults ends the read there: the strings from it
            // on are read one by one below, which says where it faults.
            let read = process_vm_readv(self.pid, &mut [IoSliceMut::new(&mut peeked)], &ranges)
                .unwrap_or(0);
            let mut offset = 0;
            for (&at, range) in batch.iter().zip(&ranges) {
                let whole = (offset + range.len <= read)
                    .then(|| &peeked[offset..offset + range.len])
                    .and_then(|bytes| Some(&bytes[..bytes.iter().position(|&b| b == 0)?]));
                offset += range.len;
                strings.push(match whole {
                    Some(string) => string.to_vec(),
                    None => {
                        let mut string = self.read_cstr(at, max)?;
                        string.pop();
                        string
                    }
                });
            }
        }
        Ok(strings)
    }

    /// The non-null pointers of a NULL-terminated array at `addr`, at most
    /// `most` of them.
    fn read_pointers(&self, addr: u64, most: usize) -> Result<Vec<u64>, MemoryError> {
        let mut pointers = Vec::new();
        let mut at = addr;
        loop {
            // Up to the end of the page only: the next may be unmapped.
            let chunk = (PAGE - at as usize % PAGE) / 8 * 8;
            let bytes = self.read(at, chunk.max(8))?;
            for word in bytes.chunks_exact(8) {
                let pointer = u64::from_ne_bytes(word.try_into().expect("8 bytes"));
                if pointer == 0 {
                    return Ok(pointers);
                }
                if pointers.len() >= most {
                    return Err(MemoryError::ArrayTooLong { addr, most });
                }
                pointers.push(pointer);
            }
            at += bytes.len() as u64;
        }
    }

    /// Writes `bytes` at `addr`.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), MemoryError> {
        let len = bytes.len();
        let mut done = 0;
        while done < len {
            let remote = [RemoteIoVec {
                base: addr as usize + done,
                len: len - done,
            }];
            let n = process_vm_writev(self.pid, &[IoSlice::new(&bytes[done..])], &remote)
                .map_err(|errno| MemoryError::Fault { addr, len, errno })?;
            if n == 0 {
                return Err(MemoryError::Fault {
                    addr,
                    len,
                    errno: nix::Error::EFAULT,
                });
            }
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_own_memory_through_the_remote_interface() {
        let me = ProcessMemory::new(std::process::id() as i32);
        let text = b"hello\0world".to_vec();
        let addr = text.as_ptr() as u64;
        assert_eq!(me.read(addr, 5).unwrap(), b"hello");
        assert_eq!(me.read_cstr(addr, 64).unwrap(), b"hello\0");
        assert!(matches!(
            me.read_cstr(addr + 6, 3),
            Err(MemoryError::StringTooLong { .. })
        ));
        let target = vec![0u8; 4];
        me.write(target.as_ptr() as u64, b"abcd").unwrap();
        assert_eq!(std::hint::black_box(&target), b"abcd");
        assert!(me.read(8, 4).is_err());
    }

    #[test]
    fn reads_a_string_array_whatever_the_lengths_and_stops_at_its_limits() {
        let me = ProcessMemory::new(std::process::id() as i32);
        let long = [b'x'; 5000].iter().copied().chain([0]).collect::<Vec<u8>>();
        let owned: Vec<Vec<u8>> = vec![
            b"sh\0".to_vec(),
            b"\0".to_vec(),
            long,
            b"PATH=/bin\0".to_vec(),
        ];
        let mut pointers: Vec<u64> = owned.iter().map(|s| s.as_ptr() as u64).collect();
        pointers.push(0);
        let strings = me
            .read_cstr_array(pointers.as_ptr() as u64, 16, 8192)
            .unwrap();
        let expected: Vec<&[u8]> = owned.iter().map(|s| &s[..s.len() - 1]).collect();
        assert_eq!(strings, expected);
        assert!(matches!(
            me.read_cstr_array(pointers.as_ptr() as u64, 3, 8192),
            Err(MemoryError::ArrayTooLong { most: 3, .. })
        ));
        assert!(matches!(
            me.read_cstr_array(pointers.as_ptr() as u64, 16, 4096),
            Err(MemoryError::StringTooLong { .. })
        ));
        // A pointer to nowhere is a fault, wherever it stands.
        let bad = [owned[0].as_ptr() as u64, 8, 0];
        assert!(matches!(
            me.read_cstr_array(bad.as_ptr() as u64, 16, 8192),
            Err(MemoryError::Fault { .. })
        ));
        assert!(me.read_cstr_array(0, 16, 8192).is_err());
    }
}
