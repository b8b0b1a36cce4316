//! A file system in memory that loses, on a simulated power cut, everything that was not
//! synced: file bytes written and length changes made since the file's last sync, and
//! names created, renamed or removed in a directory since that directory's last sync. Some
//! of the unsynced changes may survive, as on a real disk that wrote back part of its
//! cache: none, a prefix of them, or a random subset of their 512-byte sectors (and of
//! the length changes).
//!
//! This is the contract POSIX and Linux file systems give (fsync on a file makes its data
//! durable, fsync on a directory makes its entries durable, nothing else is promised),
//! taken at its weakest: a store that survives every cut here relies on nothing more.
//! Not modelled: a disk that loses synced data or flips bits (the recovery tests do that
//! to files directly), and `O_TRUNC` on an existing file (it makes a new file here).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, MutexGuard};

use raft_storage::{FileSystem, StorageFile};

use super::workload::Rng;

/// Where the simulated tree is mounted: every path must be under it.
pub const ROOT: &str = "/simulated";
const ROOT_INODE: u64 = 0;
const SECTOR_BYTES: u64 = 512;

/// Which unsynced bytes survive a cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Survival {
    /// None: only synced bytes remain.
    Nothing,
    /// The first unsynced writes, the last of them possibly cut short.
    Prefix,
    /// Each 512-byte sector of each unsynced write, and each unsynced length change,
    /// independently, with even odds.
    Sectors,
}

#[derive(Clone, Debug)]
pub struct SimulatedFileSystem {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    /// Ordered, so that a cut draws its random survivals file by file in the same order
    /// every run, and a failing cut replays.
    nodes: BTreeMap<u64, Node>,
    next_inode: u64,
    /// Operations left before the power fails (`None`: it never does).
    operations_left: Option<u64>,
    powered: bool,
    operations: u64,
}

#[derive(Debug)]
enum Node {
    File(FileNode),
    Directory { entries: BTreeMap<OsString, u64>, durable: BTreeMap<OsString, u64> },
}

/// A file's bytes now, as of its last sync, and the changes since: `data` is always
/// `durable` with `pending` applied in order.
#[derive(Debug, Default)]
struct FileNode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Change>,
}

/// An unsynced change to a file.
#[derive(Debug)]
enum Change {
    Write { offset: u64, bytes: Vec<u8> },
    SetLength(u64),
}

impl Change {
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Change::Write { offset, bytes } => write_into(data, *offset, bytes),
            Change::SetLength(length) => data.resize(*length as usize, 0),
        }
    }
}

#[derive(Debug)]
pub struct SimulatedFile {
    file_system: SimulatedFileSystem,
    inode: u64,
    /// Opened by `open_direct`: writes must be aligned and are durable at once.
    direct: bool,
}

fn power_out() -> io::Error {
    io::Error::other("simulated power failure")
}

fn write_into(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let offset = offset as usize;
    if data.len() < offset + bytes.len() {
        data.resize(offset + bytes.len(), 0);
    }
    data[offset..offset + bytes.len()].copy_from_slice(bytes);
}

impl Default for SimulatedFileSystem {
    fn default() -> SimulatedFileSystem {
        SimulatedFileSystem::new()
    }
}

impl SimulatedFileSystem {
    pub fn new() -> SimulatedFileSystem {
        let root = Node::Directory { entries: BTreeMap::new(), durable: BTreeMap::new() };
        let inner = Inner {
            nodes: BTreeMap::from([(ROOT_INODE, root)]),
            next_inode: 1,
            operations_left: None,
            powered: true,
            operations: 0,
        };
        SimulatedFileSystem { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Makes the power fail at the `operations`-th operation from now: it and every later
    /// one fail, as if the process died with the machine.
    pub fn fail_after(&self, operations: u64) {
        self.lock().operations_left = Some(operations);
    }

    /// Operations done so far.
    pub fn operations(&self) -> u64 {
        self.lock().operations
    }

    /// Cuts the power: everything unsynced is lost but what `survival` keeps (drawn from
    /// `rng`); then the power is back.
    pub fn cut_power(&self, survival: Survival, rng: &mut Rng) {
        let mut inner = self.lock();
        for node in inner.nodes.values_mut() {
            match node {
                Node::Directory { entries, durable } => *entries = durable.clone(),
                Node::File(file) => {
                    let mut kept = file.durable.clone();
                    survive(&mut kept, &file.pending, survival, rng);
                    file.data = kept.clone();
                    file.durable = kept;
                    file.pending.clear();
                }
            }
        }
        inner.powered = true;
        inner.operations_left = None;
    }
}

fn survive(data: &mut Vec<u8>, pending: &[Change], survival: Survival, rng: &mut Rng) {
    match survival {
        Survival::Nothing => {}
        Survival::Prefix => {
            let whole = rng.range(0, pending.len() as u64) as usize;
            for change in &pending[..whole] {
                change.apply(data);
            }
            if let Some(Change::Write { offset, bytes }) = pending.get(whole) {
                let part = rng.range(0, bytes.len() as u64) as usize;
                write_into(data, *offset, &bytes[..part]);
            }
        }
        Survival::Sectors => {
            for change in pending {
                let Change::Write { offset, bytes } = change else {
                    if rng.next() % 2 == 0 {
                        change.apply(data);
                    }
                    continue;
                };
                let mut start = 0_usize;
                while start < bytes.len() {
                    let absolute = *offset + start as u64;
                    let sector_end = (absolute / SECTOR_BYTES + 1) * SECTOR_BYTES;
                    let end = bytes.len().min((sector_end - *offset) as usize);
                    if rng.next() % 2 == 0 {
                        write_into(data, absolute, &bytes[start..end]);
                    }
                    start = end;
                }
            }
        }
    }
}

impl Inner {
    fn tick(&mut self) -> io::Result<()> {
        if !self.powered {
            return Err(power_out());
        }
        if let Some(left) = self.operations_left.as_mut() {
            if *left == 0 {
                self.powered = false;
                return Err(power_out());
            }
            *left -= 1;
        }
        self.operations += 1;
        Ok(())
    }

    fn components(path: &Path) -> io::Result<Vec<OsString>> {
        let relative = path
            .strip_prefix(ROOT)
            .map_err(|_| io::Error::new(io::ErrorKind::NotFound, "outside the simulated tree"))?;
        relative
            .components()
            .map(|component| match component {
                Component::Normal(name) => Ok(name.to_os_string()),
                _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "unsupported path")),
            })
            .collect()
    }

    fn resolve(&self, path: &Path) -> io::Result<u64> {
        let mut inode = ROOT_INODE;
        for name in Inner::components(path)? {
            let Some(Node::Directory { entries, .. }) = self.nodes.get(&inode) else {
                return Err(io::ErrorKind::NotFound.into());
            };
            inode = *entries.get(&name).ok_or(io::ErrorKind::NotFound)?;
        }
        Ok(inode)
    }

    /// The directory holding `path`, and `path`'s last name.
    fn parent(&self, path: &Path) -> io::Result<(u64, OsString)> {
        let name = path.file_name().ok_or(io::ErrorKind::InvalidInput)?.to_os_string();
        let parent = self.resolve(path.parent().ok_or(io::ErrorKind::InvalidInput)?)?;
        match self.nodes.get(&parent) {
            Some(Node::Directory { .. }) => Ok((parent, name)),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn entries(&mut self, directory: u64) -> &mut BTreeMap<OsString, u64> {
        match self.nodes.get_mut(&directory) {
            Some(Node::Directory { entries, .. }) => entries,
            _ => panic!("not a directory"),
        }
    }

    fn add(&mut self, path: &Path, node: Node) -> io::Result<u64> {
        let (parent, name) = self.parent(path)?;
        let inode = self.next_inode;
        self.next_inode += 1;
        self.nodes.insert(inode, node);
        self.entries(parent).insert(name, inode);
        Ok(inode)
    }

    fn file(&mut self, inode: u64) -> io::Result<&mut FileNode> {
        match self.nodes.get_mut(&inode) {
            Some(Node::File(file)) => Ok(file),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }
}

impl FileSystem for SimulatedFileSystem {
    type File = SimulatedFile;
    type Lock = ();

    fn lock(&self, _path: &Path) -> io::Result<()> {
        self.lock().tick()
    }

    fn create_directory(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.lock();
        inner.tick()?;
        if inner.resolve(path).is_ok() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let node = Node::Directory { entries: BTreeMap::new(), durable: BTreeMap::new() };
        inner.add(path, node).map(drop)
    }

    fn sync_directory(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.lock();
        inner.tick()?;
        let inode = inner.resolve(path)?;
        match inner.nodes.get_mut(&inode) {
            Some(Node::Directory { entries, durable }) => {
                *durable = entries.clone();
                Ok(())
            }
            _ => Err(io::ErrorKind::NotADirectory.into()),
        }
    }

    fn list_directory(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let mut inner = self.lock();
        inner.tick()?;
        let inode = inner.resolve(path)?;
        Ok(inner.entries(inode).keys().cloned().collect())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut inner = self.lock();
        inner.tick()?;
        Ok(inner.resolve(path).is_ok())
    }

    fn create_file(&self, path: &Path) -> io::Result<SimulatedFile> {
        let mut inner = self.lock();
        inner.tick()?;
        let inode = inner.add(path, Node::File(FileNode::default()))?;
        Ok(SimulatedFile { file_system: self.clone(), inode, direct: false })
    }

    fn open_file(&self, path: &Path) -> io::Result<SimulatedFile> {
        let mut inner = self.lock();
        inner.tick()?;
        let inode = inner.resolve(path)?;
        inner.file(inode)?;
        Ok(SimulatedFile { file_system: self.clone(), inode, direct: false })
    }

    /// As the real file system with `O_DIRECT | O_DSYNC`: writes through the handle must
    /// be aligned to `DIRECT_ALIGNMENT` (else `InvalidInput`, as Linux's `EINVAL`) and are
    /// durable when they return. One may not overlap bytes written through the page cache
    /// and not yet synced (the kernel would write those back first; the store never
    /// relies on that).
    fn open_direct(&self, path: &Path) -> io::Result<Option<SimulatedFile>> {
        let mut file = self.open_file(path)?;
        file.direct = true;
        Ok(Some(file))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut inner = self.lock();
        inner.tick()?;
        let (from_parent, from_name) = inner.parent(from)?;
        let (to_parent, to_name) = inner.parent(to)?;
        let inode = inner.entries(from_parent).remove(&from_name).ok_or(io::ErrorKind::NotFound)?;
        inner.entries(to_parent).insert(to_name, inode);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.lock();
        inner.tick()?;
        let (parent, name) = inner.parent(path)?;
        inner.entries(parent).remove(&name).ok_or(io::ErrorKind::NotFound)?;
        Ok(())
    }
}

impl StorageFile for SimulatedFile {
    fn read_exact_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<()> {
        let mut inner = self.file_system.lock();
        inner.tick()?;
        let file = inner.file(self.inode)?;
        let bytes = file
            .data
            .get(offset as usize..offset as usize + buffer.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buffer.copy_from_slice(bytes);
        Ok(())
    }

    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        let mut inner = self.file_system.lock();
        inner.tick()?;
        let file = inner.file(self.inode)?;
        if self.direct {
            let alignment = raft_storage::DIRECT_ALIGNMENT as u64;
            if offset % alignment != 0 || bytes.len() as u64 % alignment != 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "unaligned direct write"));
            }
            let end = offset + bytes.len() as u64;
            let overlaps = file.pending.iter().any(|change| match change {
                Change::Write { offset: at, bytes } => {
                    *at < end && offset < at + bytes.len() as u64
                }
                Change::SetLength(_) => true,
            });
            if overlaps {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a direct write over unsynced bytes",
                ));
            }
            let change = Change::Write { offset, bytes: bytes.to_vec() };
            change.apply(&mut file.data);
            change.apply(&mut file.durable);
            return Ok(());
        }
        let change = Change::Write { offset, bytes: bytes.to_vec() };
        change.apply(&mut file.data);
        file.pending.push(change);
        Ok(())
    }

    fn length_bytes(&self) -> io::Result<u64> {
        let mut inner = self.file_system.lock();
        inner.tick()?;
        Ok(inner.file(self.inode)?.data.len() as u64)
    }

    fn set_length_bytes(&self, length: u64) -> io::Result<()> {
        let mut inner = self.file_system.lock();
        inner.tick()?;
        let file = inner.file(self.inode)?;
        let change = Change::SetLength(length);
        change.apply(&mut file.data);
        file.pending.push(change);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut inner = self.file_system.lock();
        inner.tick()?;
        let file = inner.file(self.inode)?;
        // Replaying the changes costs what they wrote; copying `data` would cost the whole
        // file (a redb file is a megabyte or more) at every sync.
        for change in file.pending.drain(..) {
            change.apply(&mut file.durable);
        }
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }
}
