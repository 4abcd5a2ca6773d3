//! PMTiles v3 archive packs: verification at mount, tile lookup, codings and TileJSON.
//!
//! The `pmtiles` crate writes archives (see `writer`) and supplies the shared types
//! (`TileType`, `Compression`, tile-id conversion). Reading is hand-written for a measured
//! reason: the crate's reader is async over a backend and returns owned buffers after
//! awaiting a directory cache, while a warm tile hit here must be a synchronous,
//! lock-free binary search over a root parsed once, answering with a `Bytes` view of the
//! mapped file (spec §8.2: no syscalls, locks or copies on a warm hit). The crate also keeps
//! header offsets and directory entries private, and the mount has to bounds-check both.
//!
//! What it is not for: fetching archives over HTTP, or writing archives at serve time.

pub mod archive;
pub mod codings;
pub mod corrupt;
pub mod directory;
pub mod error;
pub mod header;
pub mod leaves;
pub mod media;
pub mod metadata;
pub mod sidecar;
pub mod tileid;
pub mod tilejson;
pub mod writer;

pub use archive::{Archive, ArchiveStats, TileLookup};
pub use codings::{Coding, DecodeCaps, DecodeError};
pub use error::{PackError, TileError};
pub use media::{content_type, ext_allowed, tilejson_ext};
pub use pmtiles::{Compression, TileType};
