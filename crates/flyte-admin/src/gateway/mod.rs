//! The REST/JSON gateway: routes generated from the google.api.http rules in the descriptors.
