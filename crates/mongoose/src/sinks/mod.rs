//! Built-in sinks other than `memory` (MNG-R12, §3.2): being written.
