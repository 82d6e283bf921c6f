
pub mod egress;
pub mod router;
pub mod rtc;
