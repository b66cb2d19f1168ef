//! [`Block`] as commonware's consensus and marshal see it: codec, digest, height, parent.

use super::Digest;
use crate::block::{Block, MAX_ENCODED};
use bytes::{Buf, BufMut};
use commonware_codec::{EncodeSize, Error as CodecError, Read, Write};
use commonware_consensus::types::Height;
use commonware_cryptography::Digestible;
use std::sync::Arc;

/// A block shared between the engine, marshal and the executor without copying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBlock(pub Arc<Block>);

impl ChainBlock {
    pub fn digest_of(&self) -> Digest {
        Digest(self.0.digest())
    }
}

impl Write for ChainBlock {
    fn write(&self, w: &mut impl BufMut) {
        self.0.write(w)
    }
}

impl Read for ChainBlock {
    type Cfg = ();

    fn read_cfg(r: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Block::read(r).map(|b| ChainBlock(Arc::new(b))).map_err(|e| CodecError::Wrapped("aivm block", Box::new(e)))
    }
}

impl EncodeSize for ChainBlock {
    fn encode_size(&self) -> usize {
        self.0.encoded_len()
    }
}

impl Digestible for ChainBlock {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        Digest(self.0.digest())
    }
}

impl commonware_consensus::Heightable for ChainBlock {
    fn height(&self) -> Height {
        Height::new(self.0.height())
    }
}

impl commonware_consensus::Block for ChainBlock {
    fn parent(&self) -> Digest {
        Digest(self.0.parent)
    }
}

impl commonware_consensus::BoundedBlock for ChainBlock {
    fn max_encode_size(_: &()) -> usize {
        MAX_ENCODED
    }
}
