
pub mod router;
pub mod rtc;
