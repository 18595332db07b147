//! A program run here starts in home's dynamic loader, not the host's.
//!
//! The kernel that execs a dynamically linked program opens the loader
//! its `PT_INTERP` segment names, by path, on the machine it runs on. On
//! a host whose glibc is not home's, that would be the host's loader
//! with home's `libc.so.6`, which glibc does not allow (the two share
//! private symbols), or no loader at all where home's sits on a path the
//! host lacks. So the loader is fetched from home into the cache like any
//! other code, and the program is exec'd from a launch copy: its cached
//! copy with the `PT_INTERP` program header pointing at a string appended
//! past the file's end, which names the loader's cached copy.
//!
//! Only the header's `p_offset` and `p_filesz` change, and the path
//! string that the loader reads through `p_vaddr` (its own name for
//! itself) is still home's. Once the program runs, those 16 bytes are put
//! back in its memory ([`HeaderFix`], at its first call, before any code
//! of the program's own has run): what it reads of itself is home's file.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use elf::abi::{EM_X86_64, ET_DYN, ET_EXEC, PT_INTERP};
use elf::endian::AnyEndian;
use elf::file::{Class, FileHeader};
use elf::segment::SegmentTable;

/// Bytes of an ELF64 program header.
const PHDR_SIZE: u64 = 56;
/// Where `p_offset` and `p_filesz` sit in an ELF64 program header.
const P_OFFSET_AT: u64 = 8;
const P_FILESZ_AT: u64 = 32;
/// The longest program header table the kernel reads (`elf_read_phdrs`).
const MOST_PHDR_BYTES: u64 = 64 << 10;

/// The loader a program names, and where its name is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// The path `PT_INTERP` names, as the kernel reads it (up to its NUL).
    pub path: Vec<u8>,
    /// Where in the file the `PT_INTERP` program header is.
    header_at: u64,
    /// Its place among the program headers.
    index: u64,
    /// Its `p_offset` and `p_filesz` in the program's file.
    offset: u64,
    length: u64,
}

impl Interpreter {
    /// What to put back in the memory of the program, `program_len`
    /// bytes long, once it runs from its launch copy naming `loader`.
    pub fn header_fix(&self, program_len: u64, loader: &Path) -> HeaderFix {
        HeaderFix {
            index: self.index,
            launched: [program_len, loader.as_os_str().len() as u64 + 1],
            home: [self.offset, self.length],
        }
    }
}

/// The `PT_INTERP` header of a program started from its launch copy, as
/// it is in its memory and as it is in the program's file at home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFix {
    index: u64,
    /// `p_offset` and `p_filesz` as the launch copy has them.
    launched: [u64; 2],
    /// And as home's file has them.
    home: [u64; 2],
}

impl HeaderFix {
    /// Puts home's `p_offset` and `p_filesz` back in the program headers
    /// of process `pid` (found through its `AT_PHDR`), if that process
    /// has those of its launch copy there: `Ok(false)` where it has not
    /// (another program: its exec did not happen).
    pub fn apply(&self, pid: i32) -> io::Result<bool> {
        const AT_PHDR: u64 = 3;
        let auxv = std::fs::read(format!("/proc/{pid}/auxv"))?;
        let phdrs = auxv
            .chunks_exact(16)
            .map(|pair| {
                let word = |at: usize| u64::from_ne_bytes(pair[at..at + 8].try_into().unwrap());
                (word(0), word(8))
            })
            .find(|&(key, _)| key == AT_PHDR)
            .map(|(_, value)| value)
            .ok_or_else(|| io::Error::other("no AT_PHDR"))?;
        let at = phdrs + self.index * PHDR_SIZE;
        let memory = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))?;
        let mut header = [0u8; PHDR_SIZE as usize];
        memory.read_exact_at(&mut header, at)?;
        let word = |from: u64| {
            let from = from as usize;
            u64::from_le_bytes(header[from..from + 8].try_into().unwrap())
        };
        let is_interp = u32::from_le_bytes(header[..4].try_into().unwrap()) == PT_INTERP;
        if !is_interp || [word(P_OFFSET_AT), word(P_FILESZ_AT)] != self.launched {
            return Ok(false);
        }
        memory.write_all_at(&self.home[0].to_le_bytes(), at + P_OFFSET_AT)?;
        memory.write_all_at(&self.home[1].to_le_bytes(), at + P_FILESZ_AT)?;
        Ok(true)
    }
}

/// The loader `program` (a file open for reading) names, if it is an x86-64 program the kernel would
/// start through one; `None` for a static program, a script, or anything
/// the kernel would refuse or start otherwise (which is then left to it).
pub fn interpreter_of(program: impl AsFd) -> io::Result<Option<Interpreter>> {
    let program = program.as_fd();
    let mut ident = [0u8; 64];
    if read_at_most(program, &mut ident, 0)? < ident.len() {
        return Ok(None);
    }
    let Ok(header) = parse_header(&ident) else {
        return Ok(None);
    };
    let x86_64 = header.class == Class::ELF64 && header.e_machine == EM_X86_64;
    let runs = [ET_EXEC, ET_DYN].contains(&header.e_type);
    let table_bytes = u64::from(header.e_phnum) * PHDR_SIZE;
    if !x86_64 || !runs || u64::from(header.e_phentsize) != PHDR_SIZE {
        return Ok(None);
    }
    if table_bytes == 0 || table_bytes > MOST_PHDR_BYTES {
        return Ok(None);
    }
    let mut table = vec![0u8; table_bytes as usize];
    if read_at_most(program, &mut table, header.e_phoff)? < table.len() {
        return Ok(None);
    }
    let segments = SegmentTable::new(header.endianness, header.class, &table);
    // The kernel takes the first.
    let Some((index, interp)) = segments
        .iter()
        .enumerate()
        .find(|(_, segment)| segment.p_type == PT_INTERP)
    else {
        return Ok(None);
    };
    // As the kernel checks it: at least a byte and its NUL, at most a path.
    let length = interp.p_filesz;
    if !(2..=libc::PATH_MAX as u64).contains(&length) {
        return Ok(None);
    }
    let mut path = vec![0u8; length as usize];
    if read_at_most(program, &mut path, interp.p_offset)? < path.len() || path.last() != Some(&0) {
        return Ok(None);
    }
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    path.truncate(end);
    Ok(Some(Interpreter {
        path,
        header_at: header.e_phoff + index as u64 * PHDR_SIZE,
        index: index as u64,
        offset: interp.p_offset,
        length: interp.p_filesz,
    }))
}

fn parse_header(bytes: &[u8]) -> Result<FileHeader<AnyEndian>, elf::ParseError> {
    let ident = elf::file::parse_ident::<AnyEndian>(bytes)?;
    FileHeader::parse_tail(ident, &bytes[elf::abi::EI_NIDENT..])
}

/// Reads into `buffer` from `offset` until it is full or the file ends;
/// how much was read.
fn read_at_most(file: BorrowedFd, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buffer.len() {
        match rustix::io::pread(file, &mut buffer[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(done)
}

/// Writes at `out` (a new file) the launch copy of `program`, whose loader
/// is `interpreter`, naming `loader` instead.
pub fn write_launch_copy(
    program: &Path,
    interpreter: &Interpreter,
    loader: &Path,
    out: &Path,
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let length = std::fs::copy(program, out)?;
    let file = std::fs::OpenOptions::new().write(true).open(out)?;
    let mut name = loader.as_os_str().as_bytes().to_vec();
    name.push(0);
    file.write_all_at(&name, length)?;
    let at = interpreter.header_at;
    file.write_all_at(&length.to_le_bytes(), at + P_OFFSET_AT)?;
    file.write_all_at(&(name.len() as u64).to_le_bytes(), at + P_FILESZ_AT)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn interpreter_at(path: &str) -> Option<Interpreter> {
        interpreter_of(std::fs::File::open(path).unwrap()).unwrap()
    }

    #[test]
    fn a_launch_copy_names_another_loader_and_keeps_every_other_byte() {
        let dir = std::env::temp_dir().join(format!("homing-loader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = std::fs::canonicalize("/proc/self/exe").unwrap();
        let interpreter = interpreter_at(program.to_str().unwrap()).expect("a dynamic test binary");
        assert!(interpreter.path.starts_with(b"/"), "{interpreter:?}");
        let loader = dir.join("a-loader-of-a-longer-name-than-the-one-the-program-gives.so");
        let copy = dir.join("launch");
        write_launch_copy(&program, &interpreter, &loader, &copy).unwrap();
        let told = interpreter_at(copy.to_str().unwrap()).unwrap();
        assert_eq!(told.path, loader.to_str().unwrap().as_bytes());
        assert_eq!(told.header_at, interpreter.header_at);
        let (before, after) = (
            std::fs::read(&program).unwrap(),
            std::fs::read(&copy).unwrap(),
        );
        assert_eq!(after.len(), before.len() + loader.as_os_str().len() + 1);
        let at = interpreter.header_at as usize;
        let changed: Vec<usize> = (0..before.len())
            .filter(|&i| before[i] != after[i])
            .collect();
        assert!(
            changed
                .iter()
                .all(|&i| (at + 8..at + 16).contains(&i) || (at + 32..at + 40).contains(&i)),
            "{changed:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_launch_copy_starts_in_the_loader_it_names() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("homing-launch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let interpreter = interpreter_at("/bin/echo").expect("a dynamic echo");
        let run_with = |loader: &Path| {
            let launch = dir.join("echo");
            let _ = std::fs::remove_file(&launch);
            write_launch_copy(Path::new("/bin/echo"), &interpreter, loader, &launch).unwrap();
            std::fs::set_permissions(&launch, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::process::Command::new(&launch).arg("hello").output()
        };
        let loader = dir.join("a-copy-of-the-loader.so");
        std::fs::copy(std::ffi::OsStr::from_bytes(&interpreter.path), &loader).unwrap();
        let started = run_with(&loader).unwrap();
        assert_eq!(started.stdout, b"hello\n", "{started:?}");
        // Without it, no start: the exec says so, as for any missing loader.
        std::fs::remove_file(&loader).unwrap();
        let missing = run_with(&loader).map(|output| output.status);
        assert_eq!(missing.map_err(|e| e.kind()), Err(io::ErrorKind::NotFound));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn what_starts_without_a_loader_names_none() {
        let dir = std::env::temp_dir().join(format!("homing-noloader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("script");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(interpreter_at(script.to_str().unwrap()), None);
        let empty = dir.join("empty");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(interpreter_at(empty.to_str().unwrap()), None);
        // A header cut short of its program headers.
        let program = std::fs::read("/proc/self/exe").unwrap();
        let cut = dir.join("cut");
        std::fs::write(&cut, &program[..80]).unwrap();
        assert_eq!(interpreter_at(cut.to_str().unwrap()), None);
        std::fs::remove_dir_all(&dir).unwrap();
        if Path::new("/bin/busybox").exists() {
            assert_eq!(interpreter_at("/bin/busybox"), None, "busybox-static");
        }
    }
}
