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

    /// A block whose reshare payload does not decode (within the epoch codec's bounds) is not
    /// a block.
    fn read_cfg(r: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let b = Block::read(r).map_err(|e| CodecError::Wrapped("aivm block", Box::new(e)))?;
        if let Some(p) = &b.reshare {
            super::epochs::decode_payload(p).map_err(|_| CodecError::Invalid("aivm block", "reshare payload"))?;
        }
        Ok(ChainBlock(Arc::new(b)))
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

impl commonware_consensus::CertifiableBlock for ChainBlock {
    /// The view the block was proposed in (the rest of the consensus context, the round's
    /// epoch and the parent, follows from its height and parent digest).
    type Context = commonware_consensus::types::View;

    fn context(&self) -> Self::Context {
        commonware_consensus::types::View::new(self.0.view)
    }
}

impl commonware_glue::dkg::ReshareBlock for ChainBlock {
    type Variant = commonware_cryptography::bls12381::primitives::variant::MinPk;
    type PublicKey = super::PublicKey;
    type Directory = super::epochs::Directory;

    /// The block's reshare payload. A block whose payload does not decode is refused when it
    /// is read (see `Read`), so `None` here means it carries none.
    fn payload(&self) -> Option<super::epochs::ResharePayload> {
        self.0.reshare.as_deref().and_then(|b| super::epochs::decode_payload(b).ok())
    }
}
