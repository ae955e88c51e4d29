//! Window specifications: tumbling, sliding and session, as values and as `KIND:ARGS` text.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::duration::{millis, parse_duration};
use crate::error::Error;

/// Which windows a keyed stream is grouped into. Windows are aligned to the Unix epoch, like
/// Spark's `window()` and Flink's assigners: `[k * slide, k * slide + size)`. A session is
/// `[first_event, last_event + gap)`; sessions of a key merge when an event makes them touch.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tideflow::Window;
/// let w: Window = "sliding:10s,5s".parse().unwrap();
/// assert_eq!(w, Window::sliding(Duration::from_secs(10), Duration::from_secs(5)).unwrap());
/// assert!("tumbling:0s".parse::<Window>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Fixed, non-overlapping windows of `size` ms.
    Tumbling {
        /// Window length in ms.
        size: u64,
    },
    /// Windows of `size` ms starting every `slide` ms.
    Sliding {
        /// Window length in ms.
        size: u64,
        /// Distance between window starts in ms (`0 < slide <= size`).
        slide: u64,
    },
    /// Per-key sessions that end after `gap` ms without events.
    Session {
        /// Inactivity gap in ms.
        gap: u64,
    },
}

impl Window {
    /// Tumbling windows of `size` (at least 1 ms).
    pub fn tumbling(size: Duration) -> Result<Self, Error> {
        Ok(Window::Tumbling {
            size: positive("tumbling window size", size)?,
        })
    }

    /// Sliding windows of `size` every `slide` (`0 < slide <= size`, as Spark requires).
    pub fn sliding(size: Duration, slide: Duration) -> Result<Self, Error> {
        let size = positive("sliding window size", size)?;
        let slide = positive("sliding window slide", slide)?;
        if slide > size {
            return Err(Error::Config(format!(
                "sliding window slide ({slide}ms) must not exceed its size ({size}ms)"
            )));
        }
        Ok(Window::Sliding { size, slide })
    }

    /// Session windows closed by `gap` of inactivity (at least 1 ms).
    pub fn session(gap: Duration) -> Result<Self, Error> {
        Ok(Window::Session {
            gap: positive("session gap", gap)?,
        })
    }
}

fn positive(what: &str, duration: Duration) -> Result<u64, Error> {
    match millis(duration) {
        0 => Err(Error::Config(format!("{what} must be at least 1ms"))),
        ms => Ok(ms),
    }
}

impl FromStr for Window {
    type Err = Error;

    /// Parses `tumbling:SIZE`, `sliding:SIZE,SLIDE` or `session:GAP`.
    fn from_str(text: &str) -> Result<Self, Error> {
        let usage = "expected tumbling:SIZE, sliding:SIZE,SLIDE or session:GAP, e.g. tumbling:10s";
        let (kind, args) = text
            .split_once(':')
            .ok_or_else(|| Error::Config(format!("invalid window '{text}': {usage}")))?;
        let duration = |arg: &str| {
            parse_duration(arg).map_err(|e| Error::Config(format!("invalid window '{text}': {e}")))
        };
        let window = match (kind, args.split(',').collect::<Vec<_>>().as_slice()) {
            ("tumbling", [size]) => Window::tumbling(duration(size)?),
            ("sliding", [size, slide]) => Window::sliding(duration(size)?, duration(slide)?),
            ("session", [gap]) => Window::session(duration(gap)?),
            _ => return Err(Error::Config(format!("invalid window '{text}': {usage}"))),
        };
        window.map_err(|e| Error::Config(format!("invalid window '{text}': {e}")))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Tumbling { size } => write!(f, "tumbling:{size}ms"),
            Window::Sliding { size, slide } => write!(f, "sliding:{size}ms,{slide}ms"),
            Window::Session { gap } => write!(f, "session:{gap}ms"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_specs() {
        assert_eq!(
            "tumbling:1s".parse::<Window>().unwrap(),
            Window::Tumbling { size: 1_000 }
        );
        assert_eq!(
            "session:250ms".parse::<Window>().unwrap(),
            Window::Session { gap: 250 }
        );
        for bad in [
            "tumbling",
            "hopping:1s",
            "sliding:1s",
            "sliding:1s,2s",
            "session:1s,1s",
            "tumbling:abc",
        ] {
            let err = bad.parse::<Window>().unwrap_err().to_string();
            assert!(err.contains(bad), "error for {bad} does not name it: {err}");
        }
        let shown = Window::sliding(Duration::from_secs(10), Duration::from_secs(5))
            .unwrap()
            .to_string();
        assert_eq!(
            shown.parse::<Window>().unwrap(),
            Window::Sliding {
                size: 10_000,
                slide: 5_000
            }
        );
    }
}
