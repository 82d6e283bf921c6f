//! `backyard plugin ...`: tools for plugin authors, in the binary so they work outside a Backyard checkout.

pub mod new;
pub mod render;
pub mod sdk;

use std::path::PathBuf;

use backyard_core::plugin_host::PluginKind;

/// `backyard plugin <command>`.
#[derive(clap::Subcommand, Debug)]
pub enum PluginCommand {
    /// Create a plugin crate in a new folder: Cargo.toml, plugin.toml, a working plugin with tests, a README
    /// and the SDK, ready for `cargo build --release --target wasm32-wasip2`.
    New {
        /// What the plugin is.
        #[arg(value_enum)]
        kind: Kind,
        /// Its name: lower-case letters, digits and '-'. Also the folder's name.
        name: String,
        /// Where to create the folder (default: here).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Depend on this SDK folder (e.g. a Backyard checkout's `plugin-api`) instead of writing one into the crate.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Draw layouts and overlays to a PNG without a server: who is on stage, who speaks, a screen share,
    /// props, canvas size and time as given, with the operator's settings from `-c`.
    Render(Box<render::RenderArgs>),
    /// Write the plugin SDK this binary carries into a folder (e.g. `sdk/` of a plugin, after an upgrade).
    Sdk {
        /// The folder to write it into.
        dir: PathBuf,
    },
}

/// A plugin kind on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Kind {
    Layout,
    Overlay,
    Destination,
    Filter,
}

impl From<Kind> for PluginKind {
    fn from(k: Kind) -> PluginKind {
        match k {
            Kind::Layout => PluginKind::Layout,
            Kind::Overlay => PluginKind::Overlay,
            Kind::Destination => PluginKind::Destination,
            Kind::Filter => PluginKind::Filter,
        }
    }
}
