//! Reading and writing another process's memory (a guest's, at the host).

use std::io::IoSlice;

use nix::sys::uio::{process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

const PAGE: usize = 4096;

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
}
