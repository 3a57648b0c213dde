//! Small helpers with no better home: unguessable identifiers.

use rand::Rng;

/// A 128-bit random identifier, URL- and XML-safe (for stream ids, wrapper ids).
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    hex::encode(bytes)
}
