//! Built-in feeds other than `memory` (MNG-R12, §3.2): being written.
