//! gpux engine (work in progress).
