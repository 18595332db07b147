//! Room for a program coming home, made in a running process (its
//! deputy): wherever the process has nothing, never over what it has, and
//! gone again when the program stays away; the process runs on.

use std::process::Command;

use homing_proto::image::{MappedFile, Region, RegionKind};
use homing_shim::dump::maps;
use homing_shim::memory::ProcessMemory;
use homing_shim::restore::LocalFiles;
use homing_shim::staging;

const PAGE: u64 = 4096;

fn region(start: u64, end: u64) -> Region {
    Region {
        start,
        end,
        prot: (libc::PROT_READ | libc::PROT_WRITE) as u32,
        kind: RegionKind::Private,
        name: String::new(),
        file: None,
        advice: 0,
    }
}

fn mapped(pid: i32, range: (u64, u64)) -> bool {
    maps(pid)
        .unwrap()
        .iter()
        .any(|m| m.start <= range.0 && range.1 <= m.end)
}

#[test]
fn room_is_made_only_where_the_process_has_nothing_and_removed_again() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: staging in another process needs root");
        return;
    }
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id() as i32;
    std::thread::sleep(std::time::Duration::from_millis(100));
    let before = maps(pid).unwrap();
    let own = before.first().expect("a mapping").clone();
    // 16 pages in empty space, and 8 pages straddling the start of the
    // process's first mapping: only the 4 below it are free.
    let free = (0x3_0000_0000u64, 0x3_0000_0000 + 16 * PAGE);
    assert!(!before.iter().any(|m| m.start < free.1 && free.0 < m.end));
    let straddling = (own.start - 4 * PAGE, own.start + 4 * PAGE);
    let below = (straddling.0, own.start);
    assert!(!before.iter().any(|m| m.start < below.1 && below.0 < m.end));

    let room = staging::stage(
        pid,
        &[region(free.0, free.1), region(straddling.0, straddling.1)],
        LocalFiles::default(),
    )
    .unwrap();
    let (staged, filler) = (room.ranges, room.filler);
    assert_eq!(staged, vec![free, below]);
    let filler = filler.expect("this kernel gives a userfaultfd");
    assert!(mapped(pid, free) && mapped(pid, below));
    // The process's own mapping is untouched.
    let own_after = maps(pid).unwrap();
    assert!(own_after
        .iter()
        .any(|m| m.start == own.start && m.end == own.end && m.inode == own.inode));
    // The room takes pages written from outside while the process runs:
    // a missing page is filled in place, one there is written plainly.
    let memory = ProcessMemory::new(pid);
    let plainly = |at: u64, bytes: &[u8]| {
        memory
            .write(at, bytes)
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    let mut page = vec![0u8; PAGE as usize];
    page[..11].copy_from_slice(b"coming home");
    let mut plain = 0;
    let mut counted = |at: u64, bytes: &[u8]| {
        plain += 1;
        plainly(at, bytes)
    };
    filler.fill(free.0 + PAGE, &page, &mut counted).unwrap();
    assert_eq!(memory.read(free.0 + PAGE, 11).unwrap(), b"coming home");
    page[..11].copy_from_slice(b"COMING HOME");
    filler.fill(free.0 + PAGE, &page, &mut counted).unwrap();
    assert_eq!(plain, 1);
    assert_eq!(memory.read(free.0 + PAGE, 11).unwrap(), b"COMING HOME");
    // While the filler holds the room, a missing page cannot be written
    // from outside; once it lets go, it can.
    assert!(memory.write(free.0 + 2 * PAGE, b"x").is_err());
    drop(filler);
    memory.write(free.0 + 2 * PAGE, b"x").unwrap();

    staging::unstage(pid, &staged).unwrap();
    let after = maps(pid).unwrap();
    assert!(!after.iter().any(|m| m.start < free.1 && free.0 < m.end));
    assert!(!after.iter().any(|m| m.start < below.1 && below.0 < m.end));
    // It runs on, as it was.
    assert!(child.try_wait().unwrap().is_none());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn room_for_a_file_mapping_maps_the_file_and_takes_pages_over_it() {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: staging in another process needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("homing-staging-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mapped");
    let content: Vec<u8> = (0..4 * PAGE).map(|i| (i / PAGE) as u8 + b'a').collect();
    std::fs::write(&path, &content).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    let file = MappedFile {
        path: serde_bytes::ByteBuf::from(path.to_str().unwrap().as_bytes()),
        offset: PAGE,
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        shared: false,
    };
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id() as i32;
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mapped_at = (0x3_0000_0000u64, 0x3_0000_0000 + 2 * PAGE);
    let lost_at = (0x3_1000_0000u64, 0x3_1000_0000 + PAGE);
    let of_file = Region {
        file: Some(file.clone()),
        ..region(mapped_at.0, mapped_at.1)
    };
    let lost = Region {
        file: Some(MappedFile {
            path: serde_bytes::ByteBuf::from(&b"/nonexistent/mapped"[..]),
            ..file.clone()
        }),
        ..region(lost_at.0, lost_at.1)
    };
    let shared_at = (0x3_2000_0000u64, 0x3_2000_0000 + PAGE);
    let shared = Region {
        file: Some(MappedFile {
            shared: true,
            ..file.clone()
        }),
        prot: libc::PROT_READ as u32,
        ..region(shared_at.0, shared_at.1)
    };
    let found = |wanted: &MappedFile| std::ffi::CString::new(wanted.path.to_vec()).ok();
    let regions = [of_file, lost, shared];
    let room = staging::stage(pid, &regions, LocalFiles::find(&regions, found)).unwrap();
    assert_eq!(room.ranges, vec![mapped_at, lost_at, shared_at]);
    assert_eq!(room.file_ranges.backed, vec![mapped_at, shared_at]);
    assert_eq!(room.file_ranges.shared, vec![shared_at]);
    let entries = maps(pid).unwrap();
    let entry = |at: u64| entries.iter().find(|m| m.start == at).unwrap().clone();
    assert_eq!(entry(mapped_at.0).name, path.to_str().unwrap());
    assert_eq!(entry(mapped_at.0).offset, PAGE);
    assert_eq!(entry(mapped_at.0).inode, meta.ino());
    // A file that is not there leaves empty anonymous memory, the path
    // written for its open gone.
    assert_eq!(entry(lost_at.0).inode, 0);
    let memory = ProcessMemory::new(pid);
    assert_eq!(memory.read(lost_at.0, 32).unwrap(), vec![0; 32]);
    // A page written over the file's holds what was written; the other
    // reads the file, from the offset; the file is untouched.
    memory.write(mapped_at.0 + PAGE, b"written").unwrap();
    assert_eq!(memory.read(mapped_at.0, 4).unwrap(), b"bbbb");
    assert_eq!(memory.read(mapped_at.0 + PAGE, 8).unwrap(), b"writtenc");
    assert_eq!(std::fs::read(&path).unwrap(), content);
    // Shared, it is the file's, read-only.
    assert!(entry(shared_at.0).perms.starts_with("r--s"));
    assert_eq!(memory.read(shared_at.0, 4).unwrap(), b"bbbb");
    assert!(memory.write(shared_at.0, b"x").is_err());
    staging::unstage(pid, &room.ranges).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
