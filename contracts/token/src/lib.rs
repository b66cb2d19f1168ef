//! A fungible token: balances, transfer, allowances.
#![no_std]

use aivm_sdk::prelude::*;
use aivm_sdk::storage::Map;

const BALANCES: Map<u64> = Map::new(b"bal:");
const ALLOWANCES: Map<u64> = Map::new(b"alw:");
const SUPPLY: &[u8] = b"supply";

#[derive(Serialize, Deserialize, Schema)]
pub struct Init {
    pub supply: u64,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct Transfer {
    pub to: Address,
    pub amount: u64,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct Approve {
    pub spender: Address,
    pub amount: u64,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct TransferFrom {
    pub from: Address,
    pub to: Address,
    pub amount: u64,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct AllowanceQuery {
    pub owner: Address,
    pub spender: Address,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct TransferEvent {
    pub from: Address,
    pub to: Address,
    pub amount: u64,
}

fn balance(a: &Address) -> u64 {
    BALANCES.get(&a.0).unwrap_or(0)
}

fn allowance_key(owner: &Address, spender: &Address) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(&owner.0);
    k[32..].copy_from_slice(&spender.0);
    k
}

fn move_tokens(from: Address, to: Address, amount: u64) -> Result<(), ContractError> {
    let fb = balance(&from);
    if fb < amount {
        return Err(ContractError::new(format!("insufficient balance: {fb} < {amount}")));
    }
    BALANCES.set(&from.0, &(fb - amount));
    let tb = balance(&to);
    let nb = tb.checked_add(amount).ok_or(ContractError::from("balance overflow"))?;
    BALANCES.set(&to.0, &nb);
    events::emit("transfer", &TransferEvent { from, to, amount });
    Ok(())
}

/// Mint the whole supply to the deployer: runs inside the deploy transaction (the VM refuses
/// `instantiate` in any later call), so nobody can mint before the deployer.
#[entry_point]
pub fn instantiate(args: Init) -> Result<u64, ContractError> {
    if storage::get::<u64>(SUPPLY).is_some() {
        return Err("already initialised".into());
    }
    storage::set(SUPPLY, &args.supply);
    BALANCES.set(&env::caller().0, &args.supply);
    Ok(args.supply)
}

#[entry_point]
pub fn transfer(args: Transfer) -> Result<(), ContractError> {
    move_tokens(env::caller(), args.to, args.amount)
}

#[entry_point]
pub fn approve(args: Approve) -> Result<(), ContractError> {
    ALLOWANCES.set(&allowance_key(&env::caller(), &args.spender), &args.amount);
    Ok(())
}

#[entry_point]
pub fn transfer_from(args: TransferFrom) -> Result<(), ContractError> {
    let key = allowance_key(&args.from, &env::caller());
    let allowed = ALLOWANCES.get(&key).unwrap_or(0);
    if allowed < args.amount {
        return Err(ContractError::new(format!("allowance exceeded: {allowed} < {}", args.amount)));
    }
    ALLOWANCES.set(&key, &(allowed - args.amount));
    move_tokens(args.from, args.to, args.amount)
}

#[entry_point]
pub fn balance_of(owner: Address) -> Result<u64, ContractError> {
    Ok(balance(&owner))
}

#[entry_point]
pub fn allowance(q: AllowanceQuery) -> Result<u64, ContractError> {
    Ok(ALLOWANCES.get(&allowance_key(&q.owner, &q.spender)).unwrap_or(0))
}

#[entry_point]
pub fn total_supply(_: ()) -> Result<u64, ContractError> {
    Ok(storage::get(SUPPLY).unwrap_or(0))
}
