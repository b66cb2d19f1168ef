//! The PoAI compute market (`spec/market.md`). So far: the HMM pricing pool's exact integer
//! math ([`hmm`]); its state, transactions and opcodes are next.

pub mod hmm;
