//! Keeping what a client sent as received: raw request bytes in, spliced responses out.
