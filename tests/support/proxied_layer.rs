//! A small uint16 layer (64x64x16 voxels in 32 chunks of 16x16x8) on disk, served by the static
//! file server (tests/support/httpd.rs) behind the fault proxy (tests/support/fault_proxy.rs),
//! which counts requests and injects faults on demand. Used by tests/faults.rs and tests/cache.rs.

use cloudvolume::{Options, Volume};

use super::fault_proxy::FaultProxy;
use super::httpd::FileServer;
use super::layers::{Chunks, Layer, Spec};

pub struct ProxiedLayer {
    pub layer: Layer,
    _server: FileServer,
    pub proxy: FaultProxy,
}

impl ProxiedLayer {
    pub fn start(tag: &str, chunks: Chunks) -> ProxiedLayer {
        let layer = Layer::write_tagged(Spec::new("uint16", [64, 64, 16], [16, 16, 8]).chunks(chunks), tag);
        let root = layer.path().parent().unwrap().to_path_buf();
        let server = FileServer::start(&root).expect("file server");
        let proxy = FaultProxy::start(&server.host_port()).expect("fault proxy");
        ProxiedLayer { layer, _server: server, proxy }
    }

    /// The layer's URL through the proxy.
    pub fn url(&self) -> String {
        format!("{}/{}", self.proxy.url(), self.layer.path().file_name().unwrap().to_string_lossy())
    }

    /// Open the layer through the proxy with the options JSON `opts`.
    pub fn open(&self, opts: &str) -> Volume {
        Volume::open(&self.url(), Options::parse(Some(opts)).unwrap()).expect("open through the proxy")
    }
}
