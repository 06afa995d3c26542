//! Segmentation objects next to the voxels: meshes (`mesh.rs`) and skeletons (`skeleton.rs`),
//! both possibly in shard files keyed by segment id (`kv.rs`). Their directories come from the
//! layer info's `mesh` and `skeletons` members (default `mesh` and `skeletons`, as in
//! cloud-volume), each with its own `info`, read when first used.

pub(crate) mod graphene;
pub(crate) mod kv;
pub mod mesh;
pub(crate) mod skeleton;

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::codec::compression;
use crate::error::{Error, Result};
use crate::format::mesh::MeshInfo;
use crate::format::skeleton::SkeletonInfo;
use crate::format::Info;
use crate::store::Store;
use crate::volume::engine::Engine;

use graphene::{GrapheneLink, GrapheneMeshes};
use mesh::Meshes;
use skeleton::Skeletons;

/// Largest mesh or skeleton directory `info` read.
const MAX_DIR_INFO: usize = 16 << 20;

/// A layer's object directories, opened when first used.
pub(crate) struct Objects {
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    mesh_dir: String,
    skeleton_dir: String,
    /// Whether the layer info names a skeleton directory (else cloud-volume's default info).
    skeletons_named: bool,
    /// The layer's (resolution, voxel_offset) per mip.
    scales: Vec<([f64; 3], [i64; 3])>,
    meshes: Mutex<Option<Arc<Meshes>>>,
    skeletons: Mutex<Option<Arc<Skeletons>>>,
    /// A graphene layer's chunkedgraph, its mesh metadata and the handle's mip.
    graphene: Option<GrapheneLink>,
    graphene_meshes: Mutex<Option<Arc<GrapheneMeshes>>>,
}

fn dir_of(info: &Info, member: &str, default: &str) -> (String, bool) {
    match info.json.get(member).and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(d) => (d.trim_end_matches('/').to_string(), true),
        None => (default.to_string(), false),
    }
}

impl Objects {
    pub(crate) fn new(store: Arc<dyn Store>, engine: Arc<Engine>, info: &Info) -> Objects {
        let (mesh_dir, _) = dir_of(info, "mesh", "mesh");
        let (skeleton_dir, skeletons_named) = dir_of(info, "skeletons", "skeletons");
        Objects {
            store,
            engine,
            mesh_dir,
            skeleton_dir,
            skeletons_named,
            scales: info.scales.iter().map(|s| (s.resolution, s.voxel_offset)).collect(),
            meshes: Mutex::new(None),
            skeletons: Mutex::new(None),
            graphene: None,
            graphene_meshes: Mutex::new(None),
        }
    }

    /// The objects of a graphene layer: meshes named by its chunkedgraph's manifests.
    pub(crate) fn with_graphene(mut self, link: GrapheneLink) -> Objects {
        self.graphene = Some(link);
        self
    }

    /// A graphene layer's mesh directory (its info read once); None for other layers.
    ///
    /// # Errors
    /// A missing, malformed or unsupported mesh info; I/O errors.
    pub(crate) fn graphene_meshes(&self) -> Result<Option<Arc<GrapheneMeshes>>> {
        let Some(link) = &self.graphene else { return Ok(None) };
        let mut slot = self.graphene_meshes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = slot.as_ref() {
            return Ok(Some(m.clone()));
        }
        let json = self.dir_info(&self.mesh_dir)?;
        let url = self.store.url(&crate::cloudpath::join_key(&self.mesh_dir, "info"));
        let m = Arc::new(GrapheneMeshes::new(
            self.store.clone(),
            &self.mesh_dir,
            json.as_ref(),
            &url,
            link.clone(),
            self.engine.clone(),
        )?);
        *slot = Some(m.clone());
        Ok(Some(m))
    }

    /// A directory's `info` JSON, None when there is none.
    fn dir_info(&self, dir: &str) -> Result<Option<Value>> {
        let key = crate::cloudpath::join_key(dir, "info");
        let url = self.store.url(&key);
        let mut bytes = Vec::new();
        let Some(encoding) =
            self.store.get_into(&key, &mut bytes, Some(compression::stored_bound(MAX_DIR_INFO) as u64))?
        else {
            return Ok(None);
        };
        let text = compression::decompress(compression::Object { bytes, encoding }, MAX_DIR_INFO, &url)?;
        serde_json::from_slice(&text).map(Some).map_err(|e| Error::decode(format!("{url}: not JSON: {e}")))
    }

    /// The mesh directory (its info read once).
    ///
    /// # Errors
    /// A malformed or unsupported mesh info; I/O errors.
    pub(crate) fn meshes(&self) -> Result<Arc<Meshes>> {
        let mut slot = self.meshes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let json = self.dir_info(&self.mesh_dir)?;
        let url = self.store.url(&crate::cloudpath::join_key(&self.mesh_dir, "info"));
        let info = MeshInfo::parse(json.as_ref(), &url)?;
        let m =
            Arc::new(Meshes::new(self.store.clone(), &self.mesh_dir, info, self.engine.clone(), self.scales.clone()));
        *slot = Some(m.clone());
        Ok(m)
    }

    /// The skeleton directory (its info read once; cloud-volume's default info when the layer
    /// names no skeleton directory).
    ///
    /// # Errors
    /// A malformed info, a named directory without one (`NotFound`); I/O errors.
    pub(crate) fn skeletons(&self) -> Result<Arc<Skeletons>> {
        let mut slot = self.skeletons.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let url = self.store.url(&crate::cloudpath::join_key(&self.skeleton_dir, "info"));
        let json = if self.skeletons_named { self.dir_info(&self.skeleton_dir)? } else { None };
        let info = SkeletonInfo::parse(json.as_ref(), &url)?;
        let s = Arc::new(Skeletons::new(self.store.clone(), &self.skeleton_dir, info, self.engine.clone()));
        *slot = Some(s.clone());
        Ok(s)
    }
}

pub use mesh::{Lod, MeshRequest};

use crate::format::mesh::Mesh;
use crate::format::skeleton::Skeleton;
use crate::options::Compress;
use crate::volume::Volume;

impl Volume {
    fn objects(&self) -> Result<&Objects> {
        self.objects.as_ref().ok_or_else(|| {
            Error::unsupported(format!("{}: volume services keep no meshes or skeletons", self.path.path))
        })
    }

    /// Whether object writes are gzipped (option `compress`: cloud-volume's default is gzip).
    fn object_compression(&self) -> Result<bool> {
        match self.opts.write.compress {
            Compress::Default | Compress::Gzip => Ok(true),
            Compress::None => Ok(false),
            Compress::Zstd => Err(Error::unsupported(
                "option \"compress\" = \"zstd\": meshes and skeletons are written gzipped or plain (cloud-volume's choices)",
            )),
        }
    }

    /// The mesh directory's metadata.
    ///
    /// # Errors
    /// No meshes on this kind of layer (`Unsupported`), a malformed mesh info, I/O errors.
    pub fn mesh_info(&self) -> Result<MeshInfo> {
        if let Some(g) = self.objects()?.graphene_meshes()? {
            return Ok(g.info.clone());
        }
        Ok(self.objects()?.meshes()?.info.clone())
    }

    /// The meshes of `ids`, each on its own, in the order given (None: missing, with
    /// `allow_missing`).
    ///
    /// # Errors
    /// A missing mesh (`NotFound`), a lod it lacks (`InvalidArgument`), damaged data
    /// (`Decode`), I/O errors.
    pub fn meshes(&self, ids: &[u64], req: &MeshRequest) -> Result<Vec<Option<Mesh>>> {
        if let Some(g) = self.objects()?.graphene_meshes()? {
            return g.get(ids, req);
        }
        self.objects()?.meshes()?.get(ids, req)
    }

    /// The meshes of `ids` as one mesh (cloud-volume's `mesh.get([a, b, c])`, `save_mesh`).
    ///
    /// # Errors
    /// As [`Volume::meshes`].
    pub fn mesh(&self, ids: &[u64], req: &MeshRequest) -> Result<Mesh> {
        if let Some(g) = self.objects()?.graphene_meshes()? {
            return g.get_merged(ids, req);
        }
        self.objects()?.meshes()?.get_merged(ids, req)
    }

    /// How many levels of detail the mesh of `id` has (1 for legacy meshes).
    ///
    /// # Errors
    /// As [`Volume::meshes`].
    pub fn mesh_lods(&self, id: u64) -> Result<usize> {
        if let Some(g) = self.objects()?.graphene_meshes()? {
            return g.num_lods(id);
        }
        self.objects()?.meshes()?.num_lods(id)
    }

    /// Write a legacy mesh (cloud-volume's `mesh.put`).
    ///
    /// # Errors
    /// A multi-resolution mesh directory (`Unsupported`), bad faces (`InvalidArgument`), I/O.
    pub fn put_mesh(&self, id: u64, mesh: &Mesh) -> Result<()> {
        if self.objects()?.graphene.is_some() {
            return Err(Error::unsupported(format!(
                "{}: graphene meshes are made by the chunkedgraph's meshing service; writing them is not supported",
                self.path.path
            )));
        }
        let gz = self.object_compression()?;
        self.objects()?.meshes()?.put(id, mesh, gz)
    }

    /// The skeleton directory's metadata.
    ///
    /// # Errors
    /// As [`Volume::mesh_info`].
    pub fn skeleton_info(&self) -> Result<SkeletonInfo> {
        Ok(self.objects()?.skeletons()?.info.clone())
    }

    /// The skeletons of `ids`, physical, in the order given (None: missing, with
    /// `allow_missing`).
    ///
    /// # Errors
    /// A missing skeleton (`NotFound`), damaged data (`Decode`), I/O errors.
    pub fn skeletons(&self, ids: &[u64], allow_missing: bool) -> Result<Vec<Option<Skeleton>>> {
        self.objects()?.skeletons()?.get(ids, allow_missing)
    }

    /// Write a skeleton (cloud-volume's `skeleton.upload`): vertices as given, the attributes
    /// the info declares.
    ///
    /// # Errors
    /// A sharded directory (`Unsupported`), attributes unlike the info's (`InvalidArgument`), I/O.
    pub fn put_skeleton(&self, id: u64, skeleton: &Skeleton) -> Result<()> {
        let gz = self.object_compression()?;
        self.objects()?.skeletons()?.put(id, skeleton, gz)
    }
}
