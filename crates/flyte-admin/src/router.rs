//! Composition of every admin endpoint into one axum Router.
