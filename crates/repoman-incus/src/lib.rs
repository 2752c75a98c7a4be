//! A typed client for the Incus REST API.
//!
//! repoman drives Incus for every sandbox: projects, profiles, instances, devices, exec and files.
//! This crate speaks the REST API directly (no `incus` CLI in between) over the local unix socket;
//! the wire is behind the [`Transport`] trait so an HTTPS transport for remote servers can be added
//! without touching callers.
//!
//! ```no_run
//! # fn main() -> Result<(), repoman_incus::IncusError> {
//! use repoman_incus::{DeviceSpec, ExecSpec, ImageSource, Incus, InstanceSpec};
//! let incus = Incus::connect(&repoman_core::Env::capture())?;
//! let project = incus.project("default");
//! let spec = InstanceSpec::new("api", ImageSource::alias("debian/12"))
//!     .tag("repoman.project", "api")
//!     .device("repo", DeviceSpec::disk("/home/me/src/api", "/work").shift(true))
//!     .start(true);
//! project.create_instance(&spec)?;
//! let out = project.exec("api", &ExecSpec::new(["id", "-u"]).user(1000, 1000))?;
//! assert!(out.success());
//! # Ok(()) }
//! ```
//!
//! Guarantees (see `docs/incus.md`): every request has a timeout; every mutation waits for its
//! background operation with a deadline and a still-running operation is an error; daemon errors
//! are typed ([`IncusError`]) with the HTTP status and Incus' message. Library code never prints.

pub mod access;
pub mod api;
mod client;
pub mod daemon;
pub mod error;
mod exec_stream;
pub mod progress;
mod scope;
pub mod socket;
pub mod spec;
#[cfg(feature = "testlab")]
#[doc(hidden)]
pub mod testlab;
pub mod transport;

pub use access::{Access, Restriction};
pub use api::{
    Config, Device, Devices, ImageAlias, Instance, InstanceEdit, InstanceState, Operation,
    OperationProgress, Profile, ProfilePut, Project, ServerInfo,
};
pub use client::{IMAGE_OPERATION_TIMEOUT, Incus, REQUIRED_EXTENSIONS, Reporter, Timeouts};
pub use error::{IncusError, Result};
pub use exec_stream::OutputStream;
pub use progress::ProgressReporter;
pub use scope::ProjectScope;
pub use socket::{SocketKind, SocketPath};
pub use spec::{
    DeviceSpec, DiskDevice, ExecOutput, ExecSpec, FileKind, FileMode, ImageSource, InstanceSpec,
    ProjectSpec, PulledFile, Terminal,
};
pub use transport::{
    HttpRequest, HttpResponse, Method, RawStream, Transport, TransportError, UnixTransport,
};
