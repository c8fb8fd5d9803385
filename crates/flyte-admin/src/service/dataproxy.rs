//! DataProxyService: signed upload and download locations in the blob store.
