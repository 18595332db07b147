//! Reading and writing another process's memory (a guest's, at the host).

use std::io::{IoSlice, IoSliceMut};

use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
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

    /// Reads exactly `len` bytes at `addr`.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, MemoryError> {
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let remote = [RemoteIoVec {
                base: addr as usize + done,
                len: len - done,
            }];
            let n = process_vm_readv(self.pid, &mut [IoSliceMut::new(&mut buf[done..])], &remote)
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
        Ok(buf)
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
