//! The C ABI of what volume services need beyond `cv_open`/`cv_create`: DVID repos.

use super::*;

/// Create a repo on a DVID server (`POST /api/repos`, as pydvid's `create_new` does before
/// adding a data instance): `server` is `HOST:PORT`, `http(s)://HOST:PORT` or
/// `dvid://HOST:PORT`; `alias` and `description` may be empty. `*uuid` receives the repo's
/// root UUID, a NUL-terminated string to release with `cv_string_free`; open or create its
/// instances as `dvid://HOST:PORT/<uuid>/<name>`. `options_json` as for `cv_open` (NULL: none;
/// a token in `secrets`).
///
/// # Safety
/// `server`, `alias` and `description` are NUL-terminated strings; `options_json` is NULL or
/// one; `uuid` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_dvid_create_repo(
    server: *const c_char,
    alias: *const c_char,
    description: *const c_char,
    options_json: *const c_char,
    uuid: *mut *mut c_char,
) -> cv_status {
    boundary(|| {
        let out = out_arg(uuid, "uuid")?;
        let server = str_arg(server, "server")?;
        let alias = str_arg(alias, "alias")?;
        let description = str_arg(description, "description")?;
        let opts = if options_json.is_null() { None } else { Some(str_arg(options_json, "options_json")?) };
        let root = crate::volume::create_dvid_repo(server, alias, description, &crate::options::Options::parse(opts)?)?;
        *out = CString::new(root).map_err(|e| Error::internal(e.to_string()))?.into_raw();
        Ok(())
    })
}
