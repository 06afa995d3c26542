function nfail = run_tests(varargin)
%RUN_TESTS  Tests of the CloudVolume MATLAB binding; run under GNU Octave (or MATLAB).
%
%   nfail = run_tests()            % every test
%   nfail = run_tests('pattern')   % the tests whose name contains 'pattern'
%
%   Prints one line per test case and a closing line "octave: N passed, M failed"; returns M,
%   so CI runs:  octave --no-gui --norc --eval "cd bindings/matlab/tests; exit(run_tests() > 0)"
%
%   The binding tested is the folder above this one, or $CLOUDVOLUME_MATLAB_BINDING.
%   The reference layers (written by cloud-volume and tensorstore; scripts/test.sh makes them)
%   are read from $CV_REFERENCE_DIR, else <repo>/target/reference. Without them the
%   reference cases are skipped, unless CV_REQUIRE_REFERENCE=1 (then they fail).
%   Writes go to a temporary folder, removed at the end.
%
%   The service cases talk to the loopback doubles scripts/test_octave.sh starts:
%   CV_DVID_SERVER (127.0.0.1:PORT of tests/servers/dvid.py), CV_BOSS_URL_BASE
%   (boss://http://127.0.0.1:PORT/col/exp of tests/servers/boss.py), CV_BOSS_TOKEN and
%   CV_BOSS_INTERN_DIR (what tests/reference/boss_intern.py setup wrote: intern's cutouts and
%   manifest.json), CV_OCP_SERVER (127.0.0.1:PORT of tests/servers/ocp.py) and CV_OCP_H5PY_DIR
%   (what tests/reference/ocp_h5py.py setup wrote: h5py's cutouts and manifest.json),
%   CV_GRAPHENE_MESH_URL (graphene://http://127.0.0.1:PORT/segmentation/table of
%   tests/servers/chunkedgraph.py, with the fixture's token) and CV_GRAPHENE_MESH_DIR (the fixture
%   tests/reference/graphene_meshes.py wrote: cloud-volume's meshes and manifest.json). Unset,
%   they are skipped, unless CV_REQUIRE_REFERENCE=1.

here = fileparts(mfilename('fullpath'));
repo = fileparts(fileparts(fileparts(here)));
% The binding under test: this checkout's, or a built copy (CMake puts one in its build tree).
binding = getenv('CLOUDVOLUME_MATLAB_BINDING');
if isempty(binding)
  binding = fileparts(here);
end
addpath(binding);
fprintf('binding: %s\n', fileparts(which('CloudVolume')));

ctx = struct();
ctx.repo = repo;
ctx.sample = ['file://', fullfile(repo, 'data', 'sample_layer')];
ctx.ref = getenv('CV_REFERENCE_DIR');
if isempty(ctx.ref)
  ctx.ref = fullfile(repo, 'target', 'reference');
end
ctx.tmp = tempname();
mkdir(ctx.tmp);
ctx.is_octave = exist('OCTAVE_VERSION', 'builtin') > 0;

cases = {
  'version',                 @t_version
  'sample layer: properties', @t_sample_properties
  'sample layer: indexing semantics', @t_sample_indexing
  'write/read every data type', @t_types
  'multi-channel read/write', @t_multichannel
  'encodings and compression on write', @t_encodings
  'edge boxes, bounded, autocrop', @t_edges
  'non-aligned writes', @t_non_aligned
  'errors from the library', @t_library_errors
  'errors: auth (a server answering 403)', @t_auth
  'bad arguments', @t_bad_arguments
  'handles: registry, double delete, lock', @t_handles
  'handles: no leak over open/delete cycles', @t_leak
  'create: info option', @t_create_info
  'scattered points, exists, delete_chunks', @t_points_exists_delete
  'add_scale', @t_add_scale
  'label operations', @t_labels
  'label operations: uint32, mip 1, chunk files', @t_labels32
  'label operations: two channels, download, autocrop, background', @t_labels_channels
  'display', @t_display
};

% One case per reference layer.
manifest = fullfile(ctx.ref, 'manifest.json');
if exist(manifest, 'file')
  m = jsondecode(fileread(manifest));
  layers = as_cell(m.layers);
  for i = 1:numel(layers)
    L = layers{i};
    cases(end + 1, :) = {sprintf('reference %s', L.name), @(c) t_reference_layer(c, L)}; %#ok<AGROW>
  end
elseif strcmp(getenv('CV_REQUIRE_REFERENCE'), '1')
  cases(end + 1, :) = {'reference layers', @(c) error('test:fail', 'no %s (run scripts/test.sh)', manifest)};
else
  fprintf('skip reference layers: no %s\n', manifest);
end

% Aligned image + segmentation cutouts: the imagery fixture (ImageryClient's and the model's
% expectations over the Precomputed watershed layer graphene/ws; tests/imagery.rs reads it too).
imagery = fullfile(ctx.ref, 'imagery', 'manifest.json');
if exist(imagery, 'file') && exist(fullfile(ctx.ref, 'graphene', 'ws', 'info'), 'file')
  ctx.imagery = jsondecode(fileread(imagery));
  cases(end + 1, :) = {'imagery: aligned cutouts equal ImageryClient and the model', @t_imagery_cases};
  cases(end + 1, :) = {'imagery: centre and size, names, root ids, grid, split masks', @t_imagery_options};
  cases(end + 1, :) = {'imagery: segment colours, overlay RGB and PNG', @t_imagery_overlay};
  cases(end + 1, :) = {'imagery: bad requests', @t_imagery_errors};
elseif strcmp(getenv('CV_REQUIRE_REFERENCE'), '1')
  cases(end + 1, :) = {'imagery', @(c) error('test:fail', 'no %s or graphene/ws (run scripts/test.sh)', imagery)};
else
  fprintf('skip imagery: no %s\n', imagery);
end

% Meshes and skeletons: the mesh fixture (tests/reference/make_meshes.py writes it: layers and
% what cloud-volume read from them; tests/meshes.rs reads it too), at $CV_REFERENCE_DIR/meshes.
meshes = fullfile(ctx.ref, 'meshes', 'manifest.json');
mesh_manifest = [];
if exist(meshes, 'file')
  try
    mesh_manifest = jsondecode(fileread(meshes));
    if ~isstruct(mesh_manifest) || ~all(isfield(mesh_manifest, {'reads', 'texts', 'ids', 'missing_id'}))
      error('test:fail', 'not the manifest tests/reference/make_meshes.py writes');
    end
  catch err
    mesh_manifest = [];
    cases(end + 1, :) = {'meshes: the fixture''s manifest', @(c) error('test:fail', '%s: %s', meshes, err.message)};
  end
end
if isstruct(mesh_manifest)
  ctx.meshes = fullfile(ctx.ref, 'meshes');
  ctx.mesh_manifest = mesh_manifest;
  cases(end + 1, :) = {'meshes: legacy reads equal cloud-volume''s', @t_mesh_legacy};
  cases(end + 1, :) = {'meshes: multi-resolution reads, every lod, three layers', @t_mesh_multilod};
  cases(end + 1, :) = {'meshes: merged [a b c] reads', @t_mesh_merged};
  cases(end + 1, :) = {'meshes and skeletons: one per id (vol.meshes, vol.skeletons), order, allow_missing', ...
                       @t_mesh_each};
  cases(end + 1, :) = {'skeletons: both layers, every attribute, info defaults', @t_skeleton_reads};
  cases(end + 1, :) = {'meshes and skeletons: missing ids, lods out of range, the bad/ fixture', @t_mesh_errors};
  cases(end + 1, :) = {'meshes and skeletons: saveMesh OBJ/PLY bytes, saveSkeleton SWC', @t_mesh_save};
  cases(end + 1, :) = {'meshes and skeletons: writes into a temporary copy read back', @t_mesh_writes};
  cases(end + 1, :) = {'meshes and skeletons: bad arguments', @t_mesh_bad_arguments};
  cases(end + 1, :) = {'meshes and skeletons: bad handles and argument counts into the MEX file', @t_mesh_bad_handles};
elseif exist(meshes, 'file')
  % (its manifest did not decode: the case above fails)
elseif strcmp(getenv('CV_REQUIRE_REFERENCE'), '1')
  cases(end + 1, :) = {'meshes', @(c) error('test:fail', ['no %s (run target/venv/bin/python ' ...
                       'tests/reference/make_meshes.py %s)'], meshes, fileparts(meshes))};
else
  fprintf('skip meshes: no %s (target/venv/bin/python tests/reference/make_meshes.py %s writes it)\n', meshes, ...
          fileparts(meshes));
end

% Services: DVID and the BOSS, through the doubles (scripts/test_octave.sh starts them).
ctx.dvid = getenv('CV_DVID_SERVER');
if ~isempty(ctx.dvid)
  cases(end + 1, :) = {'dvid: repo, uint16 instance, aligned write, aligned and unaligned reads', @t_dvid_image};
  cases(end + 1, :) = {'dvid: uint64 labelmap, label operations, unaligned write refused', @t_dvid_labelmap};
  cases(end + 1, :) = {'dvid: rgba8 instance, ChannelFirst download (pydvid''s cxyz)', @t_dvid_rgba};
  cases(end + 1, :) = {'dvid: unknown node and instance, names taken, bad arguments', @t_dvid_errors};
elseif strcmp(getenv('CV_REQUIRE_REFERENCE'), '1')
  cases(end + 1, :) = {'dvid', @(c) error('test:fail', 'CV_DVID_SERVER is not set (scripts/test_octave.sh sets it)')};
else
  fprintf('skip dvid: CV_DVID_SERVER is not set (scripts/test_octave.sh starts the DVID double)\n');
end
ctx.boss = getenv('CV_BOSS_URL_BASE');
ctx.boss_token = getenv('CV_BOSS_TOKEN');
ctx.boss_dir = getenv('CV_BOSS_INTERN_DIR');
if ~isempty(ctx.boss) && ~isempty(ctx.boss_token) && ~isempty(ctx.boss_dir)
  cases(end + 1, :) = {'boss: every channel equals intern''s cutouts', @t_boss_intern};
  cases(end + 1, :) = {'boss: credentials, wrong token, unknown channel', @t_boss_errors};
elseif strcmp(getenv('CV_REQUIRE_REFERENCE'), '1')
  cases(end + 1, :) = {'boss', @(c) error('test:fail', ['CV_BOSS_URL_BASE, CV_BOSS_TOKEN or CV_BOSS_INTERN_DIR ' ...
                       'is not set (scripts/test_octave.sh sets them)'])};
else
  fprintf('skip boss: CV_BOSS_URL_BASE is not set (scripts/test_octave.sh starts the BOSS double)\n');
end
ctx.ocp = getenv('CV_OCP_SERVER');
ctx.ocp_dir = getenv('CV_OCP_H5PY_DIR');
if ~isempty(ctx.ocp) && ~isempty(ctx.ocp_dir)
  cases(end + 1, :) = {'ocp: every channel as npz, raw and hdf5 equals h5py''s cutouts', @t_ocp_h5py};
  cases(end + 1, :) = {'ocp: a write read back as hdf5, unknown channel, bad ocp_format', @t_ocp_errors};
elseif strcmp(getenv('CV_REQUIRE_REFERENCE'), '1')
  cases(end + 1, :) = {'ocp', @(c) error('test:fail', 'CV_OCP_SERVER or CV_OCP_H5PY_DIR is not set (scripts/test_octave.sh sets them)')};
else
  fprintf('skip ocp: CV_OCP_SERVER is not set (scripts/test_octave.sh starts the ndstore double)\n');
end
% graphene:// meshes: the chunkedgraph double (tests/servers/chunkedgraph.py) on the fixture
% tests/reference/graphene_meshes.py writes (cloud-volume's reads through the same double).
ctx.gmesh_url = getenv('CV_GRAPHENE_MESH_URL');
ctx.gmesh_dir = getenv('CV_GRAPHENE_MESH_DIR');
if ~isempty(ctx.gmesh_url) && exist(fullfile(ctx.gmesh_dir, 'manifest.json'), 'file')
  cases(end + 1, :) = {'graphene meshes: every recorded read equals cloud-volume''s, errors, allow_missing, fused', ...
                       @t_graphene_meshes};
  cases(end + 1, :) = {'graphene meshes: lods, a meshless root, tokens, an unknown table', @t_graphene_meshes_api};
elseif strcmp(getenv('CV_REQUIRE_REFERENCE'), '1')
  cases(end + 1, :) = {'graphene meshes', @(c) error('test:fail', ['CV_GRAPHENE_MESH_URL or CV_GRAPHENE_MESH_DIR ' ...
                       '(manifest.json) is not set (scripts/test_octave.sh sets them)'])};
else
  fprintf('skip graphene meshes: CV_GRAPHENE_MESH_URL is not set (scripts/test_octave.sh starts the chunkedgraph double)\n');
end

only = '';
if nargin > 0
  only = varargin{1};
end
npass = 0;
nfail = 0;
t_all = tic;
for i = 1:size(cases, 1)
  name = cases{i, 1};
  if ~isempty(only) && isempty(strfind(name, only))
    continue;
  end
  before = CloudVolume.live_handles();
  t0 = tic;
  try
    cases{i, 2}(ctx);
    leaked = CloudVolume.live_handles() - before;
    if leaked ~= 0
      error('test:fail', '%d handle(s) still live after the test', leaked);
    end
    npass = npass + 1;
    fprintf('ok   %s (%.2f s)\n', name, toc(t0));
  catch err
    nfail = nfail + 1;
    where = '';
    if ~isempty(err.stack)
      where = sprintf(' [%s:%d]', err.stack(1).name, err.stack(1).line);
    end
    fprintf('FAIL %s: %s: %s%s\n', name, err.identifier, err.message, where);
  end
end
try
  rmdir(ctx.tmp, 's');
catch
end
fprintf('%.1f s\n', toc(t_all));
if ctx.is_octave
  runtime = 'octave';
else
  runtime = 'matlab';
end
fprintf('%s: %d passed, %d failed\n', runtime, npass, nfail);
end

% =========================================================================================
% Helpers.

function c = as_cell(x)
if iscell(x)
  c = x(:).';
elseif isstruct(x)
  c = num2cell(x(:).');
else
  c = {};
end
end

function check(cond, varargin)
if ~(islogical(cond) || isnumeric(cond)) || isempty(cond) || ~all(cond(:))
  if isempty(varargin)
    error('test:fail', 'check failed');
  end
  error('test:fail', varargin{:});
end
end

function check_same(got, want, what)
% Same class, same size, same bytes (NaN payloads and -0 included).
check(strcmp(class(got), class(want)), '%s: class %s, want %s', what, class(got), class(want));
check(isequal(size(got), size(want)), '%s: size %s, want %s', what, mat2str(size(got)), mat2str(size(want)));
if ~isempty(got)
  check(isequal(reshape(typecast(got(:), 'uint8'), [], 1), reshape(typecast(want(:), 'uint8'), [], 1)), ...
        '%s: values differ', what);
end
end

% err = expect_error(fn, id, needle): fn() must raise `id`, its message containing `needle`.
function err = expect_error(fn, id, needle)
if nargin < 3
  needle = '';
end
try
  fn();
catch err
  check(strcmp(err.identifier, id), 'expected error %s, got %s: %s', id, err.identifier, err.message);
  check(isempty(needle) || ~isempty(strfind(err.message, needle)), ...
        'the %s message "%s" does not contain "%s"', id, err.message, needle);
  check(isempty(strfind(err.message, 'cloudvolume_mex:')), 'the message keeps the MEX prefix: %s', err.message);
  return;
end
error('test:fail', 'expected error %s (%s), but there was none', id, needle);
end

% unique, labelMask, renumber, downloadPoint, downloadFiles on a uint64 compressed_segmentation
% layer written here, each checked against a cutout.
function t_labels(ctx)
info = CloudVolume.create_new_info(1, 'segmentation', 'uint64', 'compressed_segmentation', [8 8 40], [-4 2 0], ...
                                   [40 30 12], [16 16 8]);
v = CloudVolume(new_path(ctx, 'labels'), 'info', info);
[x, y, z] = ndgrid(0:39, 0:29, 0:11);
k = floor(x / 5) + 8 * floor(y / 7) + 64 * floor(z / 3);
A = uint64(1e12) + uint64(k);
A(mod(k, 23) == 0) = 0;
v.write([-4 2 0], A);
lo = [-1 5 1];
hi = [29 30 10];
C = v.cutout(lo, hi);
[labels, counts] = v.unique(lo, hi);
want = unique(C(:));
check(isequal(labels, want), 'unique labels: %d, want %d', numel(labels), numel(want));
n = arrayfun(@(l) sum(C(:) == l), want);
check(isequal(double(counts), n), 'unique counts');
check(isa(labels, 'uint64') && sum(double(counts)) == numel(C), 'unique class and total');
M = v.labelMask(lo, hi, labels(end));
check(islogical(M) && isequal(M, C == labels(end)), 'labelMask equals cutout == label');
[R, back] = v.renumber(lo, hi);
check(isa(R, 'uint8') && isequal(size(R), size(C)) && back(1) == 0, 'renumber class %s', class(R));
check(isequal(reshape(back(double(R(:)) + 1), size(C)), C), 'renumbered voxels map back');
P = v.downloadPoint([10 20 5], [8 8 1]);
check(isequal(size(P), [8 8]) && isequal(P, v.cutout([6 16 5], [13 23 5])), 'downloadPoint box');
F = v.downloadFiles([-4 2 0], [19 17 7]);
check(numel(F) == 2 && strcmp(F(1).name, '8_8_40/-4-12_2-18_0-8') && isa(F(1).data, 'uint8'), 'downloadFiles');
expect_error(@() v.unique([-9 2 0], [3 3 3]), 'cloudvolume:outOfBounds', 'outside the bounds');
img = create_layer(ctx, 'labels_img', 'uint16', 'raw', 1, [8 8 8], [8 8 8], [0 0 0]);
expect_error(@() img.unique([0 0 0], [3 3 3]), 'cloudvolume:invalidArgument', 'uint32 or uint64');
delete(img);
delete(v);
end

% A raw, gzip-compressed uint32 layer with a second scale: more than 255 labels (renumbered
% to uint16), the 'mip' options, masks of several labels, chunk files decompressed and as
% stored, a missing chunk left out; every expectation from a cutout.
function t_labels32(ctx)
v = create_layer(ctx, 'labels32', 'uint32', 'raw', 1, [50 40 20], [16 16 8], [-3 5 10], 'compress', 'gzip');
m1 = v.add_scale([2 2 1]);
check(m1 == 1, 'add_scale gave mip %d', m1);
w = CloudVolume(new_path(ctx, 'labels32'), 'mip', 1, 'compress', 'gzip', 'use_https', true);
[x, y, z] = ndgrid(0:49, 0:39, 0:19);
v.write([-3 5 10], label32(x, y, z));
[x, y, z] = ndgrid(1:w.volume_size(1), 1:w.volume_size(2), 1:w.volume_size(3));
w.write(w.voxel_offset, label32(3 * x, 5 * y, z));
lo = [0 8 12];
hi = [30 40 25];
C = v.cutout(lo, hi);
want = unique(C(:));
[labels, counts] = v.unique(lo, hi);
check(isa(labels, 'uint64') && isequal(labels, uint64(want)) && numel(labels) > 300, ...
      'uint32 unique: %d labels, want %d', numel(labels), numel(want));
check(isequal(double(counts), arrayfun(@(l) sum(C(:) == l), want)), 'uint32 unique counts');
check(isequal(v.unique(lo, hi), labels), 'unique with one output');
% 'mip', 1 reads mip 1's data.
lo1 = [0 6 12];
hi1 = [10 19 25];
C1 = w.cutout(lo1, hi1);
u1 = v.unique(lo1, hi1, 'mip', 1);
check(isequal(u1, uint64(unique(C1(:)))) && ~isequal(u1, v.unique(lo1, hi1)), 'unique at mip 1');
% Masks of several labels (0 among them; doubles or uint64), of none.
a = double(labels(200));
b = double(labels(end));
M = v.labelMask(lo, hi, [a 0 b 123456789]);
check(islogical(M) && isequal(M, C == a | C == 0 | C == b), 'labelMask of several labels');
check(isequal(v.labelMask(lo, hi, uint64([a b])), C == a | C == b), 'labelMask of uint64 labels');
M0 = v.labelMask(lo1, hi1, [], 'mip', 1);
check(islogical(M0) && isequal(size(M0), size(C1)) && ~any(M0(:)), 'labelMask of no labels');
% Renumbering: uint16, ascending, 0 kept; at mip 1 too.
[R, back] = v.renumber(lo, hi);
check(isa(R, 'uint16') && isequal(size(R), size(C)) && back(1) == 0 && issorted(back), ...
      'renumber: class %s, %d labels', class(R), numel(back));
check(isequal(reshape(back(double(R(:)) + 1), size(C)), uint64(C)), 'uint16 renumbered voxels map back');
check(isequal(unique(R(C ~= 0)), uint16(1:numel(back) - 1)'), 'renumbered values are 1..N');
[R1, back1] = v.renumber(lo1, hi1, 'mip', 1);
check(isequal(reshape(back1(double(R1(:)) + 1), size(C1)), uint64(C1)), 'renumber at mip 1');
% Points: at mip 1 (halved in x and y), and in another resolution.
P = v.downloadPoint([20 30 15], [4 6 1], 'mip', 1);
check(isequal(P, w.cutout([8 12 15], [11 17 15])), 'downloadPoint at mip 1');
P2 = v.downloadPoint([10 15 15], 2, 'coord_resolution', [8 8 40]);
check(isequal(P2, v.cutout([19 29 14], [20 30 15])), 'downloadPoint with coord_resolution');
% Chunk files: decompressed raw chunks are the cutout's bytes; as stored they are gzip.
F = v.downloadFiles([-3 5 10], [12 20 17]);
chunk = v.cutout([-3 5 10], [12 20 17]);
check(numel(F) == 1 && strcmp(F(1).name, '4_4_40/-3-13_5-21_10-18') && ...
      isequal(F(1).data, typecast(chunk(:), 'uint8')), 'downloadFiles: the chunk equals the cutout');
G = v.downloadFiles([-3 5 10], [12 20 17], 'decompress', false);
check(numel(G) == 1 && isequal(double(G(1).data(1:2)), [31; 139]), 'downloadFiles decompress false: gzip');
o = w.voxel_offset;
e = min(o + [16 16 8], o + w.volume_size) - 1;
F1 = v.downloadFiles(o, o, 'mip', 1);
name1 = sprintf('8_8_40/%d-%d_%d-%d_%d-%d', o(1), e(1) + 1, o(2), e(2) + 1, o(3), e(3) + 1);
c1 = w.cutout(o, e);
check(numel(F1) == 1 && strcmp(F1(1).name, name1) && isequal(F1(1).data, typecast(c1(:), 'uint8')), ...
      'downloadFiles at mip 1: %s', name1);
v.delete_chunks([-3 5 10], [12 20 17]);
F2 = v.downloadFiles([-3 5 10], [13 20 17]);
check(numel(F2) == 1 && strcmp(F2(1).name, '4_4_40/13-29_5-21_10-18'), 'a missing chunk is left out');
expect_error(@() v.renumber([-9 5 10], [0 8 12]), 'cloudvolume:outOfBounds', 'outside the bounds');
expect_error(@() v.downloadFiles(lo, hi, 'level', 3), 'cloudvolume:invalidArgument', 'decompress');
delete(w);
delete(v);
end

% A two-channel uint32 layer: unique counts every channel, masks and renumbering keep the
% channel dimension; download with 'label' and 'renumber'; autocrop crops the box first; an
% unbounded handle counts outside voxels as background_color; the graphene options reach the
% library by their names. Every expectation comes from a cutout.
function t_labels_channels(ctx)
v = create_layer(ctx, 'labels_c2', 'uint32', 'raw', 2, [50 40 20], [16 16 8], [-3 5 10]);
[x, y, z] = ndgrid(-3:46, 5:44, 10:29);
v.write([-3 5 10], cat(4, label_c2(x, y, z), label_c2(x + 4, y, z)));   % channel 1 moved by 4 in x
lo = [0 8 12];
hi = [19 29 21];
C = v.cutout(lo, hi);
check(isequal(size(C), [20 22 10 2]), 'two-channel cutout: size %s', mat2str(size(C)));
want = unique(C(:));
[labels, counts] = v.unique(lo, hi);
check(isequal(labels, uint64(want)) && isequal(double(counts), arrayfun(@(l) sum(C(:) == l), want)) && ...
      sum(double(counts)) == numel(C), 'unique over both channels: %d labels, want %d', numel(labels), numel(want));
C0 = C(:, :, :, 1);
check(numel(unique(C0(:))) < numel(want), 'channel 1 has labels channel 0 lacks');
a = double(labels(round(end / 3)));
b = double(labels(end));
M = v.labelMask(lo, hi, [a b]);
check(islogical(M) && isequal(M, C == a | C == b) && any(any(any(M(:, :, :, 2)))), 'labelMask keeps the channels');
check(isequal(v.download(lo, hi, 'label', [a b]), M), 'download with label');
check(isequal(v.download(lo, hi), C) && isequal(v.download(lo, hi, 'mip', 0), C), 'download is the cutout');
[R, back] = v.renumber(lo, hi);
check(isequal(size(R), size(C)) && isequal(reshape(back(double(R(:)) + 1), size(C)), uint64(C)), ...
      'renumber keeps the channels');
[R2, back2] = v.download(lo, hi, 'renumber', true);
check(isequal(R2, R) && isequal(back2, back), 'download with renumber');
expect_error(@() v.download(lo, hi, 'label', a, 'renumber', true), 'cloudvolume:invalidArgument', 'not both');
expect_error(@() v.download(lo, hi, 'labels', a), 'cloudvolume:invalidArgument', 'label');
% autocrop: the box is cropped to the volume (x -3 .. 4 here) before counting and masking.
ac = CloudVolume(v.cloudpath, 'autocrop', true);
Cc = v.cutout([-3 8 12], [4 11 13]);
[lc, cc] = ac.unique([-10 8 12], [4 11 13]);
check(isequal(lc, uint64(unique(Cc(:)))) && sum(double(cc)) == numel(Cc), 'unique with autocrop');
check(isequal(ac.labelMask([-10 8 12], [4 11 13], a), Cc == a), 'labelMask with autocrop');
[Rc, backc] = ac.renumber([-10 8 12], [4 11 13]);
check(isequal(reshape(backc(double(Rc(:)) + 1), size(Cc)), uint64(Cc)), 'renumber with autocrop');
check(isempty(ac.unique([-20 8 12], [-10 9 13])), 'unique of a box cropped away');
check(isequal(size(ac.labelMask([-20 8 12], [-10 9 13], a)), [0 2 2 2]), 'labelMask of a box cropped away');
% bounded=false: voxels outside the volume are background_color (5) everywhere.
ub = CloudVolume(v.cloudpath, 'bounded', false, 'background_color', 5);
Cb = ub.cutout([-8 8 12], [1 11 13]);   % x -8 .. -4 is outside: 5 x 4 x 2 voxels, 2 channels
[lb, cb] = ub.unique([-8 8 12], [1 11 13]);
check(isequal(lb, uint64(unique(Cb(:)))) && isequal(cb(lb == 5), uint64(80)), ...
      'unique counts the outside as background_color');
Mb = ub.labelMask([-8 8 12], [1 11 13], 5);
check(isequal(Mb, Cb == 5) && sum(Mb(:)) == 80, 'labelMask of the background outside');
expect_error(@() v.unique([-8 8 12], [1 11 13]), 'cloudvolume:outOfBounds', 'outside the bounds');
% The graphene options reach the library by their names (a Precomputed layer ignores them).
g = CloudVolume(v.cloudpath, 'agglomerate', false, 'timestamp', 1700000000.5, 'stop_layer', 2, 'use_https', true);
check(isequal(g.unique(lo, hi), labels), 'graphene options on a Precomputed layer');
expect_error(@() CloudVolume(v.cloudpath, 'stop_layer', 0), 'cloudvolume:invalidArgument', 'stop_layer');
expect_error(@() CloudVolume(v.cloudpath, 'timestamp', -1), 'cloudvolume:invalidArgument', 'timestamp');
delete(g);
delete(ub);
delete(ac);
delete(v);
end

function A = label_c2(x, y, z)
k = floor((x + 8) / 3) + 20 * floor((y + 8) / 4) + 400 * floor((z + 8) / 3);
A = uint32(1000 + k);
A(mod(k, 11) == 0) = 0;
end

function A = label32(x, y, z)
k = floor(x / 2) + 25 * floor(y / 2) + 500 * floor(z / 4);
A = uint32(70000 + k);
A(mod(k, 13) == 0) = 0;
end

function p = new_path(ctx, name)
p = ['file://', fullfile(ctx.tmp, name)];
end

function v = create_layer(ctx, name, data_type, encoding, nc, sz, chunk, offset, varargin)
info = CloudVolume.create_new_info(nc, 'image', data_type, encoding, [4 4 40], offset, sz, chunk);
v = CloudVolume(new_path(ctx, name), 'info', info, varargin{:});
end

% Values covering a class's range, deterministic, of size sz.
function A = test_values(cls, sz, seed)
n = prod(sz);
k = mod((0:n - 1).' * 7919 + seed * 104729, 65521);
switch cls
  case {'single', 'double'}
    A = cast((k - 30000) / 7, cls);
  case 'uint64'
    A = uint64(k) * uint64(2)^47 + uint64(k);   % beyond 2^53: no detour through double
  case 'int64'
    A = (int64(k) - 30000) * int64(2)^46 - int64(k);
  otherwise
    lo = double(intmin(cls));
    hi = double(intmax(cls));
    A = cast(lo + mod(k * 2654435761, hi - lo + 1), cls);
end
A = reshape(A, sz);
end

function bytes = read_file_bytes(path)
fid = fopen(path, 'r');
check(fid >= 0, 'cannot open %s', path);
bytes = fread(fid, Inf, '*uint8');
fclose(fid);
end

function write_file_bytes(path, bytes)
fid = fopen(path, 'w');
check(fid >= 0, 'cannot write %s', path);
fwrite(fid, bytes, 'uint8');
fclose(fid);
end

% =========================================================================================
% Tests.

function t_version(ctx)
v = CloudVolume.version();
check(ischar(v) && ~isempty(regexp(v, '^\d+\.\d+\.\d+', 'once')), 'version "%s"', v);
toml = fileread(fullfile(ctx.repo, 'Cargo.toml'));
tok = regexp(toml, '(?m)^version = "([^"]+)"', 'tokens', 'once');
check(strcmp(v, tok{1}), 'version %s, Cargo.toml says %s', v, tok{1});
end

function t_sample_properties(ctx)
v = CloudVolume(ctx.sample);
check(strcmp(v.cloudpath, ctx.sample), 'cloudpath');
check(v.mip == 0, 'default mip');
check(isequal(v.voxel_offset, [-16 8 0]), 'voxel_offset %s', mat2str(v.voxel_offset));
check(isequal(v.volume_size, [96 80 24]), 'volume_size %s', mat2str(v.volume_size));
check(isequal(v.bounds, [-16 8 0; 79 87 23]), 'bounds %s', mat2str(v.bounds));
check(isequal(v.shape, [96 80 24 1]), 'shape %s', mat2str(v.shape));
check(isequal(v.chunk_size, [32 32 16]), 'chunk_size');
check(isequal(v.resolution, [8 8 40]), 'resolution');
check(strcmp(v.data_type, 'uint8') && strcmp(v.matlab_class, 'uint8'), 'data_type');
check(v.num_channels == 1 && v.num_mips == 2 && isequal(v.available_mips, [0 1]), 'channels/mips');
check(strcmp(v.encoding, 'raw') && strcmp(v.layer_type, 'image'), 'encoding/layer_type');
i = v.info;
check(isstruct(i) && strcmp(i.data_type, 'uint8') && numel(as_cell(i.scales)) == 2, 'info');
v.mip = 1;
check(v.mip == 1 && isequal(v.bounds, [-8 4 0; 39 43 23]) && isequal(v.resolution, [16 16 40]), 'mip 1 properties');
w = CloudVolume(ctx.sample, 'mip', 1);
check(w.mip == 1 && isequal(w.voxel_offset, [-8 4 0]), 'mip option');
check_same(w(-8:39, 4:43, 0:23), v(-8:39, 4:43, 0:23), 'mip 1 read');
delete(w);
delete(v);
end

function t_sample_indexing(ctx)
v = CloudVolume(ctx.sample);
W = v.cutout([-16 8 0], [79 87 23]);
check(strcmp(class(W), 'uint8') && isequal(size(W), [96 80 24]), 'whole volume %s', mat2str(size(W)));
check(any(W(:) ~= 0), 'the sample layer reads as all zeros');
% Absolute coordinates, inclusive stops: vol(a:b, ...) is W(a-x0+1 : b-x0+1, ...).
check_same(v(-16:79, 8:87, 0:23), W, 'vol(whole)');
check_same(v(:, :, :), W, 'vol(:, :, :)');
check_same(v(-16:end, 8:end, 0:end), W, 'vol(a:end, ...)');
check_same(v(0:31, 10:20, 5:17), W(17:48, 3:13, 6:18), 'interior box');
check_same(v(5, 9, 7), W(22, 2, 8), 'one voxel');
s = v(-16:79, 8:87, 12);
check(ismatrix(s) && isequal(size(s), [96 80]), 'a z slice is 2-D: %s', mat2str(size(s)));
check_same(s, W(:, :, 13), 'z slice');
check_same(v(:, 30, :), W(:, 23, :), 'colon in x and z');
check_same(v(end, end, end), W(end, end, end), 'vol(end, end, end)');
check_same(v(int32(0):int32(3), uint8(9), int64(0)), W(17:20, 2, 1), 'integer-class subscripts');
check_same(v(0:3, 9:12, 0:1, 0), v(0:3, 9:12, 0:1), 'channel 0 of a 1-channel layer');
check_same(v(0:3, 9:12, 0:1, :), v(0:3, 9:12, 0:1), 'channel colon');
e = v(0:-1, 9:12, 0:1);
check(strcmp(class(e), 'uint8') && isequal(size(e), [0 4 2]), 'empty range gives an empty array: %s', mat2str(size(e)));
% Chained indexing on the result and on properties.
check(isequal(subsref(v, struct('type', {'()', '()'}, 'subs', {{0:3, 9:12, 0}, {2, 3}})), W(18, 4, 1)), ...
      'chained () on the read');
check(isequal(v.bounds(2, :), [79 87 23]), 'chained property indexing');
% cutout at another mip equals indexing there.
v.mip = 1;
check_same(v.cutout([-8 4 0], [39 43 23], 'mip', 1), v(:, :, :), 'cutout mip option');
check_same(v.cutout([-16 8 0], [79 87 23], 'mip', 0), W, 'cutout mip 0 from a mip-1 volume');
delete(v);
end

function t_types(ctx)
types = {'uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'uint64', 'int64', 'float32', 'float64'};
classes = {'uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'uint64', 'int64', 'single', 'double'};
for t = 1:numel(types)
  name = ['types_', types{t}];
  v = create_layer(ctx, name, types{t}, 'raw', 1, [40 24 10], [16 16 8], [-8 4 2], 'compress', false);
  check(strcmp(v.matlab_class, classes{t}) && strcmp(v.data_type, types{t}), '%s: class %s', types{t}, v.matlab_class);
  A = test_values(classes{t}, [40 24 10], t);
  if any(strcmp(classes{t}, {'single', 'double'}))
    A(1) = NaN;
    A(2) = Inf;
    A(3) = -Inf;
    A(4) = -0;
    A(5) = realmax(classes{t});
  else
    A(1) = intmin(classes{t});
    A(2) = intmax(classes{t});
  end
  v(-8:31, 4:27, 2:11) = A;           % the whole volume (edges clip the last chunks)
  check_same(v(-8:31, 4:27, 2:11), A, [types{t}, ' read back']);
  check_same(v.cutout([0 8 3], [15 23 9]), A(9:24, 5:20, 2:8), [types{t}, ' sub-box']);
  w = CloudVolume(new_path(ctx, name));
  check_same(w(:, :, :), A, [types{t}, ' through a fresh handle']);
  % On disk (raw, uncompressed): chunk -8..8 x 4..20 x 2..10 holds A(1:16, 1:16, 1:8) in
  % Fortran order, little-endian.
  bytes = read_file_bytes(fullfile(ctx.tmp, name, '4_4_40', '-8-8_4-20_2-10'));
  part = A(1:16, 1:16, 1:8);
  check(isequal(bytes, typecast(part(:), 'uint8')), '%s: chunk file bytes differ', types{t});
  % Writes take exactly the layer's class.
  if ~strcmp(classes{t}, 'double')
    expect_error(@() subsasgn_box(v, [-8 4 2], double(A)), 'cloudvolume:invalidArgument', classes{t});
  else
    expect_error(@() subsasgn_box(v, [-8 4 2], single(A)), 'cloudvolume:invalidArgument', 'double');
  end
  delete(w);
  delete(v);
end
end

function subsasgn_box(v, lo, A)
sz = size(A);
sz(end + 1:3) = 1;
v(lo(1):lo(1) + sz(1) - 1, lo(2):lo(2) + sz(2) - 1, lo(3):lo(3) + sz(3) - 1) = A;
end

function t_multichannel(ctx)
v = create_layer(ctx, 'multi', 'uint16', 'raw', 3, [32 32 8], [16 16 8], [0 0 0], 'compress', false);
check(v.num_channels == 3 && isequal(v.shape, [32 32 8 3]), 'shape %s', mat2str(v.shape));
A = test_values('uint16', [32 32 8 3], 5);
v(0:31, 0:31, 0:7) = A;
B = v(0:31, 0:31, 0:7);
check_same(B, A, 'x-y-z-channel read');
check_same(v(0:31, 0:31, 0:7, :), A, 'channel colon');
check_same(v(3:9, 4:4, 2:5, 1), A(4:10, 5, 3:6, 2), 'channel 1');
check_same(v(3:9, 4:4, 2:5, 1:2), A(4:10, 5, 3:6, 2:3), 'channels 1:2');
check_same(v(3:9, 4:4, 2:5, end), A(4:10, 5, 3:6, 3), 'channel end');
check_same(v.cutout([1 2 3], [1 2 3]), reshape(A(2, 3, 4, :), [1 1 1 3]), 'one voxel, every channel');
% One z slice of every channel: x-y-1-channel.
s = v(0:31, 0:31, 4);
check(isequal(size(s), [32 32 1 3]), 'slice of 3 channels: %s', mat2str(size(s)));
% On disk: channel is the slowest axis of a raw chunk.
bytes = read_file_bytes(fullfile(ctx.tmp, 'multi', '4_4_40', '16-32_0-16_0-8'));
part = A(17:32, 1:16, 1:8, :);
check(isequal(bytes, typecast(part(:), 'uint8')), 'multi-channel chunk file bytes differ');
% Writes take every channel.
expect_error(@() subsasgn_box(v, [0 0 0], A(1:16, 1:16, :, 1)), 'cloudvolume:invalidArgument', 'channel');
expect_error(@() v.write([0 0 0], A(1:16, 1:16, :, 1)), 'cloudvolume:invalidArgument', '3');
expect_error(@() write_channels(v, A(1:16, 1:16, :, 1:2)), 'cloudvolume:invalidArgument', 'every channel');
expect_error(@() v(0:1, 0:1, 0:1, 3), 'cloudvolume:invalidArgument', 'not in 0:2');
expect_error(@() v(0:1, 0:1, 0:1, -1), 'cloudvolume:invalidArgument', 'numbered from 0');
% A 4-D write through write(lo, A) and the fresh handle.
C = test_values('uint16', [16 16 8 3], 9);
v.write([16 16 0], C);
w = CloudVolume(new_path(ctx, 'multi'));
check_same(w(16:31, 16:31, 0:7), C, 'write(lo, A) seen by a fresh handle');
check_same(w(0:15, 0:15, 0:7), A(1:16, 1:16, :, :), 'untouched chunk');
delete(w);
delete(v);
end

function write_channels(v, A)
v(0:15, 0:15, 0:7, 0:1) = A;
end

function t_encodings(ctx)
% compressed_segmentation uint64 (labels beyond 2^53), png uint8/uint16, jpeg uint8 (lossy).
v = create_layer(ctx, 'cseg', 'uint64', 'compressed_segmentation', 1, [64 64 16], [32 32 16], [0 0 0]);
check(strcmp(v.encoding, 'compressed_segmentation'), 'encoding');
L = uint64(2)^60 + uint64(floor((0:63).' / 9) + 5 * floor((0:63) / 17));
L = repmat(L, [1 1 16]);
L(:, :, 9:16) = L(:, :, 9:16) + uint64(7);
v(0:63, 0:63, 0:15) = L;
w = CloudVolume(new_path(ctx, 'cseg'));
check_same(w(:, :, :), L, 'compressed_segmentation uint64 round trip');
delete(w);
delete(v);

v = create_layer(ctx, 'png16', 'uint16', 'png', 2, [20 12 3], [16 16 2], [1 2 3]);
A = test_values('uint16', [20 12 3 2], 3);
v(:, :, :) = A;
check_same(v(:, :, :), A, 'png uint16 round trip');
delete(v);

v = create_layer(ctx, 'jpeg', 'uint8', 'jpeg', 1, [32 32 4], [32 32 4], [0 0 0]);
[x, y] = ndgrid(0:31, 0:31);
A = uint8(repmat(4 * x + 2 * y, [1 1 4]));
v(0:31, 0:31, 0:3) = A;
B = v(0:31, 0:31, 0:3);
check(strcmp(class(B), 'uint8') && isequal(size(B), size(A)), 'jpeg read shape');
d = max(abs(double(B(:)) - double(A(:))));
check(d <= 12, 'jpeg round trip off by %d', d);
delete(v);

% compress: gzip and zstd files on file://, read back.
for c = {'gzip', 'zstd'}
  name = ['compress_', c{1}];
  v = create_layer(ctx, name, 'uint32', 'raw', 1, [16 16 8], [16 16 8], [0 0 0], 'compress', c{1});
  A = test_values('uint32', [16 16 8], 11);
  v(0:15, 0:15, 0:7) = A;
  suffix = struct('gzip', '.gz', 'zstd', '.zstd');
  check(exist(fullfile(ctx.tmp, name, '4_4_40', ['0-16_0-16_0-8', suffix.(c{1})]), 'file') == 2, ...
        '%s: no %s chunk file', c{1}, suffix.(c{1}));
  w = CloudVolume(new_path(ctx, name), 'parallel', 1);
  check_same(w(0:15, 0:15, 0:7), A, [c{1}, ' read back']);
  delete(w);
  delete(v);
end
end

function t_edges(ctx)
% 37 x 21 x 9 at offset (-5, -3, -1), chunks 16 x 8 x 4: clipped last chunks on every axis.
v = create_layer(ctx, 'edges', 'int16', 'raw', 1, [37 21 9], [16 8 4], [-5 -3 -1]);
A = test_values('int16', [37 21 9], 4);
v(-5:31, -3:17, -1:7) = A;
check_same(v(:, :, :), A, 'whole');
% Corner voxels, boxes touching each face, the last (clipped) chunk.
check_same(v(-5, -3, -1), A(1, 1, 1), 'low corner');
check_same(v(31, 17, 7), A(end, end, end), 'high corner');
check_same(v(27:31, 13:17, 7), A(33:37, 17:21, 9), 'last clipped chunk');
check_same(v(-5:-5, -3:17, -1:7), A(1, :, :), 'low x face');
check_same(v(31, :, :), A(end, :, :), 'high x face');
check_same(v(10:11, 4:5, 2:3), A(16:17, 8:9, 4:5), 'across chunk corners');
% Writes ending at the volume edge count as aligned.
B = test_values('int16', [5 5 1], 8);
v(27:31, 13:17, 7) = B;
A(33:37, 17:21, 9) = B;
check_same(v(:, :, :), A, 'edge write');
% bounded (default): a box leaving the volume is an error; bounded=false reads background.
expect_error(@() v(-6:0, 0, 0), 'cloudvolume:outOfBounds', 'outside');
expect_error(@() v.cutout([30 0 0], [32 0 0]), 'cloudvolume:outOfBounds');
u = CloudVolume(new_path(ctx, 'edges'), 'bounded', false, 'background_color', 7);
C = u(-7:33, -3:17, -1:7);
check(isequal(size(C), [41 21 9]), 'unbounded read size');
check(all(all(all(C([1 2 40 41], :, :) == 7))), 'outside reads as background_color');
check_same(C(3:39, :, :), A, 'inside of the unbounded read');
check(all(reshape(u(100:101, 100:101, 100:101), [], 1) == 7), 'wholly outside');
delete(u);
% autocrop: the result is the part inside the volume; writes are cropped too.
c = CloudVolume(new_path(ctx, 'edges'), 'autocrop', true);
check_same(c(-10:0, -3:-2, -1), A(1:6, 1:2, 1), 'autocrop read');
check_same(c.cutout([25 10 5], [99 99 99]), A(31:37, 14:21, 7:9), 'autocrop cutout');
check(isempty(c(100:110, 0, 0)), 'autocrop read wholly outside is empty');
D = test_values('int16', [8 21 9], 12);
% Only x 28..31 lies inside: off the chunk grid (27..31), refused without non_aligned_writes.
expect_error(@() autocrop_write(c, D), 'cloudvolume:invalidArgument');
delete(c);
n = CloudVolume(new_path(ctx, 'edges'), 'non_aligned_writes', true, 'autocrop', true);
n(28:35, -3:17, -1:7) = D;
A(34:37, :, :) = D(1:4, :, :);
check_same(n(:, :, :), A, 'autocrop write');
delete(n);
delete(v);
end

function autocrop_write(c, D)
c(28:35, -3:17, -1:7) = D;
end

function t_non_aligned(ctx)
v = create_layer(ctx, 'nonaligned', 'uint8', 'raw', 1, [32 32 8], [16 16 8], [0 0 0]);
A = test_values('uint8', [32 32 8], 2);
v(0:31, 0:31, 0:7) = A;
B = test_values('uint8', [5 6 3], 3);
err = expect_error(@() subsasgn_box(v, [3 4 2], B), 'cloudvolume:invalidArgument');
check(~isempty(strfind(err.message, 'non_aligned_writes')) || ~isempty(strfind(lower(err.message), 'align')), ...
      'the alignment message names the option: %s', err.message);
check_same(v(:, :, :), A, 'a refused write changes nothing');
w = CloudVolume(new_path(ctx, 'nonaligned'), 'non_aligned_writes', true);
w(14:18, 13:18, 2:4) = B;
A(15:19, 14:19, 3:5) = B;
check_same(w(:, :, :), A, 'non-aligned write merged');
check_same(v(:, :, :), A, 'seen by the other handle');
delete(w);
delete(v);
end

function t_library_errors(ctx)
% notFound: no layer; a missing chunk (fill_missing reads it as background).
expect_error(@() CloudVolume(new_path(ctx, 'no_such_layer')), 'cloudvolume:notFound', 'no_such_layer');
v = create_layer(ctx, 'sparse', 'uint8', 'raw', 1, [32 16 8], [16 16 8], [0 0 0]);
v(0:15, 0:15, 0:7) = test_values('uint8', [16 16 8], 1);
err = expect_error(@() v(0:31, 0:15, 0:7), 'cloudvolume:notFound', '16-32_0-16_0-8');
check(isempty(strfind(err.message, 'cloudvolume_mex')), 'message: %s', err.message);
f = CloudVolume(new_path(ctx, 'sparse'), 'fill_missing', true, 'background_color', 3);
B = f(0:31, 0:15, 0:7);
check(all(reshape(B(17:32, :, :), [], 1) == 3), 'fill_missing background');
delete(f);
% outOfBounds.
expect_error(@() v(0:32, 0:15, 0:7), 'cloudvolume:outOfBounds', 'bounds');
% decode: a corrupt chunk (the library names the chunk).
write_file_bytes(fullfile(ctx.tmp, 'sparse', '4_4_40', '0-16_0-16_0-8'), uint8(1:10));
expect_error(@() v(0:15, 0:15, 0:7), 'cloudvolume:decode', '0-16_0-16_0-8');
delete(v);
% io: nothing listens on port 9 (one attempt, short timeout).
expect_error(@() CloudVolume('http://127.0.0.1:9/layer', 'max_attempts', 1, 'timeout', 2), 'cloudvolume:io', '127.0.0.1');
% unsupported: a service the library does not read yet (OCP; DVID and the BOSS have cases below).
expect_error(@() CloudVolume('n5://https://example.org/coll/exp/chan'), 'cloudvolume:unsupported', 'n5://');
% invalidArgument from the library: an unknown option, a bad value.
expect_error(@() CloudVolume(ctx.sample, 'no_such_option', 1), 'cloudvolume:invalidArgument', 'no_such_option');
expect_error(@() CloudVolume(ctx.sample, 'parallel', 0), 'cloudvolume:invalidArgument', 'parallel');
expect_error(@() CloudVolume(ctx.sample, 'max_inflight_bytes', 1000), 'cloudvolume:invalidArgument', 'max_inflight_bytes');
w = CloudVolume(ctx.sample, 'max_inflight_bytes', 65536, 'parallel', 3);
u = CloudVolume(ctx.sample);
check(isequal(w(0:3, 8:11, 0:1), u(0:3, 8:11, 0:1)), 'a read under a 64 KiB byte budget');
delete(w);
delete(u);
expect_error(@() CloudVolume(ctx.sample, 'bounded', 'yes'), 'cloudvolume:invalidArgument', 'bounded');
expect_error(@() CloudVolume(ctx.sample, 'compress', 'lzma'), 'cloudvolume:invalidArgument', 'lzma');
expect_error(@() CloudVolume(ctx.sample, 'cache', 17), 'cloudvolume:invalidArgument', 'cache');
% The options cloud-volume users pass are accepted.
w = CloudVolume(ctx.sample, 'mip', 0, 'bounded', true, 'fill_missing', false, 'parallel', true, ...
                'cache', false, 'cdn_cache', false, 'progress', false, 'compress', [], 'timeout', 30);
check(w.is_open(), 'cloud-volume options');
delete(w);
w = CloudVolume(ctx.sample, 'parallel', 2, 'Fill_Missing', 1, 'BOUNDED', 0);
check(w.options.fill_missing == true && w.options.bounded == false, 'names are case-insensitive, 0/1 are logical');
delete(w);
% The mip must exist.
expect_error(@() CloudVolume(ctx.sample, 'mip', 2), 'cloudvolume:invalidArgument', 'mips 0 to 1');
end

function t_auth(ctx)
% A loopback server that answers every request with 403 (python3, as scripts/setup.sh has).
[rc, ~] = system('python3 -c "import http.server"');
if rc ~= 0
  fprintf('     (no python3: cloudvolume:auth not checked)\n');
  return;
end
script = fullfile(ctx.tmp, 'deny.py');
portfile = fullfile(ctx.tmp, 'deny.port');
fid = fopen(script, 'w');
fprintf(fid, '%s\n', ...
  'import http.server, os, sys, time', ...
  'done = []', ...
  'class Deny(http.server.BaseHTTPRequestHandler):', ...
  '    def do_GET(self):', ...
  '        self.send_response(403)', ...
  '        self.send_header("Content-Length", "9")', ...
  '        self.end_headers()', ...
  '        self.wfile.write(b"forbidden")', ...
  '        done.append(self.path)', ...
  '    do_HEAD = do_GET', ...
  '    def log_message(self, *args):', ...
  '        pass', ...
  'server = http.server.HTTPServer(("127.0.0.1", 0), Deny)', ...
  'server.timeout = 0.5', ...
  'open(sys.argv[1] + ".tmp", "w").write(str(server.server_address[1]))', ...
  'os.rename(sys.argv[1] + ".tmp", sys.argv[1])', ...
  'end = time.time() + 30', ...
  'while time.time() < end and not any(p.endswith("/info") for p in done):', ...
  '    server.handle_request()');
fclose(fid);
system(sprintf('python3 "%s" "%s" >/dev/null 2>&1 &', script, portfile));
t0 = tic;
while ~exist(portfile, 'file') && toc(t0) < 10
  pause(0.05);
end
check(exist(portfile, 'file') == 2, 'the 403 server did not start');
port = str2double(fileread(portfile));
url = sprintf('http://127.0.0.1:%d/layer', port);
expect_error(@() CloudVolume(url, 'max_attempts', 1, 'timeout', 5), 'cloudvolume:auth', '403');
end

function t_bad_arguments(ctx)
v = CloudVolume(ctx.sample);
ia = 'cloudvolume:invalidArgument';
% Ranges: contiguous, increasing, integers; ':' ; 3 or 4 subscripts.
expect_error(@() v([0 2 4], 8:9, 0), ia, 'contiguous');
expect_error(@() v(0:2:8, 8:9, 0), ia, 'contiguous');
expect_error(@() v(5:-1:0, 8:9, 0), ia, 'increasing');
expect_error(@() v([3 3], 8:9, 0), ia, 'contiguous');
expect_error(@() v(0:3, [9 8], 0), ia, 'the y index');
expect_error(@() v(0.5:3.5, 8:9, 0), ia, 'integers');
expect_error(@() v(0:3, 8:9, NaN), ia, 'integers');
expect_error(@() v(true(1, 4), 8:9, 0), ia, 'logical');
expect_error(@() v('abc', 8:9, 0), ia, 'text');
expect_error(@() v({0:3}, 8:9, 0), ia, 'cell');
expect_error(@() v(0:3, 8:9, 1i), ia, 'range of integers');
expect_error(@() v([0 1; 2 3], 8:9, 0), ia, 'vector');
expect_error(@() v(0:3, 8:9), ia, '3 ranges');
expect_error(@() v(0:3), ia, '3 ranges');
expect_error(@() v(0:3, 8:9, 0, 0, 0), ia, '3 ranges');
expect_error(@() v{0:3, 8:9, 0}, ia, '()');
% cutout / write arguments.
expect_error(@() v.cutout([0 8], [3 9 0]), ia, 'lo must be 3 integers');
expect_error(@() v.cutout([0 8 0], [3 9 0.5]), ia, 'hi must be 3 integers');
expect_error(@() v.cutout([3 9 1], [0 8 0]), ia, 'below');
expect_error(@() v.cutout('abc', [0 8 0]), ia, 'lo');
expect_error(@() v.cutout([0 8 0], [3 9 0], 'mip', -1), ia, 'mip');
expect_error(@() v.cutout([0 8 0], [3 9 0], 'mip', 5), ia, 'mips 0 to 1');
expect_error(@() v.cutout([0 8 0], [3 9 0], 'mop', 0), ia, 'mip');
expect_error(@() v.write([0 8 0], zeros(4, 4, 4)), ia, 'uint8(A)');
expect_error(@() v.write([0 8 0], uint8(zeros(2, 2, 2, 2, 2))), ia, 'dimensions');
expect_error(@() v.write([0 8 0], {1}), ia, 'cell');
expect_error(@() v.write([0 8 0], int8(1:4)), ia, 'int8');
expect_error(@() v.write([0 8 0], sparse(1:4)), ia, 'sparse');
expect_error(@() v.write([0 8 0], complex(uint8(1:4), uint8(1:4))), ia, 'complex');
expect_error(@() subsasgn_box(v, [0 8 0], true(4, 4, 4)), ia, 'logical');
expect_error(@() wrong_size_assignment(v), ia, 'the box is 4x4x4');
expect_error(@() v.scattered_points([1 2]), ia, 'n x 3');
expect_error(@() v.scattered_points([1 2 3.5]), ia, 'n x 3');
% Properties are read-only except mip, which must exist.
expect_error(@() set_field(v, 'bounds', [0 0 0; 1 1 1]), ia, 'cannot be set');
expect_error(@() set_field(v, 'Id', uint64(1)), ia, 'cannot be set');
expect_error(@() set_field(v, 'mip', 7), ia, 'mips 0 to 1');
expect_error(@() set_field(v, 'mip', 0.5), ia, 'integer');
check(v.mip == 0, 'the mip is unchanged after refused assignments');
% Constructor arguments.
expect_error(@() CloudVolume(), ia, 'usage');
expect_error(@() CloudVolume(42), ia, 'cloudpath');
expect_error(@() CloudVolume(ctx.sample, 'mip'), ia, 'name-value');
expect_error(@() CloudVolume(ctx.sample, 3, 4), ia, 'option names');
expect_error(@() CloudVolume(ctx.sample, 'mip', -1), ia, 'mip');
expect_error(@() CloudVolume(ctx.sample, 'mip', [0 1]), ia, 'mip');
expect_error(@() CloudVolume(ctx.sample, 'autocrop', 'yes'), ia, 'autocrop');
expect_error(@() CloudVolume(ctx.sample, 'timeout', [1 2]), ia, 'timeout');
expect_error(@() CloudVolume(ctx.sample, 'info', 42), ia, 'info');
expect_error(@() CloudVolume.create_new_info(1, 'image', 'uint8', 'raw', [4 4 40], [0 0 0]), ia, 'usage');
expect_error(@() CloudVolume.create_new_info(1, 'image', 'uint7', 'raw', [4 4 40], [0 0 0], [8 8 8]), ia, 'uint7');
expect_error(@() CloudVolume.create_new_info(1, 'image', 'uint8', 'raw', [4 4], [0 0 0], [8 8 8]), ia, 'resolution');
delete(v);
end

function wrong_size_assignment(v)
v(0:3, 8:11, 0:3) = uint8(zeros(4, 4, 5));
end

function set_field(v, name, value)
switch name
  case 'bounds'
    v.bounds = value;
  case 'Id'
    v.Id = value;
  case 'mip'
    v.mip = value;
end
end

function t_handles(ctx)
base = CloudVolume.live_handles();
check(base == 0, '%d handles live before the test', base);
check(~CloudVolume.mex_locked(), 'the MEX file is locked with no handle live');
v = CloudVolume(ctx.sample);
check(CloudVolume.live_handles() == 1, 'one handle');
check(CloudVolume.mex_locked(), 'a live handle locks the MEX file');
w = CloudVolume(ctx.sample);
check(CloudVolume.live_handles() == 2, 'two handles');
check(v.Id ~= w.Id, 'distinct ids');
% A copy is the same handle (handle semantics).
c = v;
delete(c);
check(~v.is_open() && CloudVolume.live_handles() == 1, 'deleting a copy deletes the object');
delete(v);                                 % double delete: harmless
v.delete();
check(CloudVolume.live_handles() == 1, 'double delete freed nothing else');
expect_error(@() v(0, 8, 0), 'cloudvolume:invalidHandle', 'deleted');
expect_error(@() v.cutout([0 8 0], [0 8 0]), 'cloudvolume:invalidHandle', 'deleted');
expect_error(@() v.bounds, 'cloudvolume:invalidHandle', 'deleted');
% Ids the registry does not hold are errors, never crashes; freeing them is a no-op.
expect_error(@() CloudVolume.call_mex('cutout', uint64(987654321), 0, [0 8 0], [1 9 1]), ...
             'cloudvolume:invalidHandle', '987654321');
expect_error(@() CloudVolume.call_mex('meta', 0), 'cloudvolume:invalidHandle');
expect_error(@() CloudVolume.call_mex('meta', 'x'), 'cloudvolume:invalidHandle');
expect_error(@() CloudVolume.call_mex('nonsense'), 'cloudvolume:invalidArgument', 'no command');
check(CloudVolume.call_mex('free', uint64(987654321)) == false, 'free of an unknown id');
id = w.Id;
check(CloudVolume.call_mex('free', id) == true, 'free of a live id');
check(CloudVolume.call_mex('free', id) == false, 'second free of the same id');
expect_error(@() w(0, 8, 0), 'cloudvolume:invalidHandle', num2str(id));
delete(w);                                 % its id is gone already: harmless
check(CloudVolume.live_handles() == 0 && ~CloudVolume.mex_locked(), 'all freed, unlocked');
% clear of the variable and the end of a function scope free the handle.
v = CloudVolume(ctx.sample);
clear v;
check(CloudVolume.live_handles() == 0, 'clear v frees the handle');
open_and_forget(ctx);
check(CloudVolume.live_handles() == 0, 'a handle going out of scope is freed');
% mexLock: `clear mex` while a handle lives must not unload the MEX file (the registry and
% the library's threads live there). (Not `clear functions`: Octave 7 then breaks every live
% classdef object, whatever its class.)
v = CloudVolume(ctx.sample);
A = v(0:3, 8:11, 0:1);
clear mex;                                 %#ok<CLMEX>
check_same(v(0:3, 8:11, 0:1), A, 'read after clear mex');
check(CloudVolume.live_handles() == 1, 'the registry survived clear mex');
delete(v);
check(~CloudVolume.mex_locked(), 'unlocked after the last delete');
end

function open_and_forget(ctx)
v = CloudVolume(ctx.sample);
check(CloudVolume.live_handles() == 1, 'open in a function');
x = v(0, 8, 0); %#ok<NASGU>
end

function t_leak(ctx)
status_threads = @() threads_now();
base_threads = status_threads();
base = CloudVolume.live_handles();
v = CloudVolume(ctx.sample);
A = v(0:7, 8:15, 0:3);
delete(v);
for k = 1:300
  v = CloudVolume(ctx.sample, 'parallel', 4);
  if mod(k, 50) == 0
    check_same(v(0:7, 8:15, 0:3), A, sprintf('read in cycle %d', k));
  end
  delete(v);
end
check(CloudVolume.live_handles() == base, '%d handles live after 300 cycles, %d before', CloudVolume.live_handles(), base);
check(base > 0 || ~CloudVolume.mex_locked(), 'locked after 300 cycles');
t = status_threads();
if ~isnan(t) && ~isnan(base_threads)
  % Each handle owns a thread pool; freed handles must not leave their threads behind.
  check(t <= base_threads + 8, 'threads grew from %d to %d over 300 open/delete cycles', base_threads, t);
end
end

function n = threads_now()
n = NaN;
fid = fopen('/proc/self/status', 'r');
if fid < 0
  return;
end
txt = fread(fid, Inf, '*char').';
fclose(fid);
tok = regexp(txt, 'Threads:\s*(\d+)', 'tokens', 'once');
if ~isempty(tok)
  n = str2double(tok{1});
end
end

function t_create_info(ctx)
info = CloudVolume.create_new_info(2, 'segmentation', 'uint32', 'raw', [8 8 40], [10 20 30], [64 48 16], [32 16 16]);
check(isstruct(info) && strcmp(info.type, 'segmentation') && info.num_channels == 2, 'create_new_info struct');
p = new_path(ctx, 'created');
v = CloudVolume(p, 'info', info);
check(strcmp(v.layer_type, 'segmentation') && isequal(v.voxel_offset, [10 20 30]) && isequal(v.chunk_size, [32 16 16]), ...
      'created layer properties');
check(exist(fullfile(ctx.tmp, 'created', 'info'), 'file') == 2, 'the info file is written at once');
delete(v);
% Reopening with the same info opens it; a different one is refused; overwrite replaces.
v = CloudVolume(p, 'info', info);
delete(v);
other = info;
other.scales.resolution = [4; 4; 40];
expect_error(@() CloudVolume(p, 'info', other), 'cloudvolume:invalidArgument', 'differs');
v = CloudVolume(p, 'info', other, 'overwrite', true);
check(isequal(v.resolution, [4 4 40]), 'overwrite replaced the info');
% vol.info round-trips into a new layer (one scale, one chunk size kept as lists).
w = CloudVolume(new_path(ctx, 'copied'), 'info', v.info);
check(isequal(w.info, v.info), 'info copied through a struct');
delete(w);
% JSON text works too.
txt = fileread(fullfile(ctx.tmp, 'created', 'info'));
w = CloudVolume(new_path(ctx, 'from_text'), 'info', txt);
check(isequal(w.chunk_size, [32 16 16]) && w.num_channels == 2, 'info as JSON text');
delete(w);
% A multi-scale info (from a layer on disk) is copied with every scale.
s = CloudVolume(ctx.sample);
w = CloudVolume(new_path(ctx, 'sample_copy'), 'info', s.info);
check(w.num_mips == 2 && isequal(w.info, s.info), 'two-scale info copied');
delete(w);
delete(s);
delete(v);
% An invalid info is the library's error.
bad = info;
bad.data_type = 'uint7';
expect_error(@() CloudVolume(new_path(ctx, 'bad_info'), 'info', bad), 'cloudvolume:unsupported', 'uint7');
end

function t_points_exists_delete(ctx)
v = create_layer(ctx, 'pts', 'uint16', 'raw', 2, [40 24 8], [16 16 8], [-4 0 0]);
A = test_values('uint16', [40 24 8 2], 6);
v(-4:11, 0:15, 0:7) = A(1:16, 1:16, :, :);
v(12:35, 0:15, 0:7) = A(17:40, 1:16, :, :);
pts = [-4 0 0; 35 15 7; 0 3 4; 12 15 0; 0 3 4];
V = v.scattered_points(pts);
check(strcmp(class(V), 'uint16') && isequal(size(V), [5 2]), 'points: %s %s', class(V), mat2str(size(V)));
for i = 1:size(pts, 1)
  check_same(V(i, :), reshape(v.cutout(pts(i, :), pts(i, :)), 1, 2), sprintf('point %d', i));
end
check(isequal(size(v.scattered_points(zeros(0, 3))), [0 2]), 'no points');
expect_error(@() v.scattered_points([0 16 0]), 'cloudvolume:notFound');
expect_error(@() v.scattered_points([99 0 0]), 'cloudvolume:outOfBounds');
% exists / chunk_names: chunks x -4..12, 12..28, 28..36 times y 0..16, 16..24.
tf = v.exists([-4 0 0], [35 23 7]);
names = v.chunk_names([-4 0 0], [35 23 7]);
check(islogical(tf) && isequal(tf(:).', [true true true false false false]), 'exists %s', mat2str(tf));
check(isequal(names, {'4_4_40/-4-12_0-16_0-8'; '4_4_40/12-28_0-16_0-8'; '4_4_40/28-36_0-16_0-8'; ...
                      '4_4_40/-4-12_16-24_0-8'; '4_4_40/12-28_16-24_0-8'; '4_4_40/28-36_16-24_0-8'}), ...
      'chunk names: %s', strjoin(names.', ' '));
for i = 1:numel(names)
  on_disk = exist(fullfile(ctx.tmp, 'pts', strrep(names{i}, '/', filesep)), 'file') == 2;
  check(on_disk == tf(i), 'exists(%d) says %d, the disk %d', i, tf(i), on_disk);
end
check(isequal(v.exists([0 0 0], [0 0 0]).', true), 'exists of one voxel');
% delete_chunks: the chunk then reads as missing.
v.delete_chunks([12 0 0], [27 15 7]);
check(isequal(v.exists([-4 0 0], [35 15 7]).', [true false true]), 'exists after delete_chunks');
expect_error(@() v(12:27, 0:15, 0:7), 'cloudvolume:notFound');
f = CloudVolume(new_path(ctx, 'pts'), 'fill_missing', true);
check(all(reshape(f(12:27, 0:15, 0:7), [], 1) == 0), 'deleted chunk reads as background');
check_same(f(-4:11, 0:15, 0:7), A(1:16, 1:16, :, :), 'neighbour kept');
delete(f);
expect_error(@() v.delete_chunks([13 0 0], [27 15 7]), 'cloudvolume:invalidArgument');
delete(v);
end

function t_add_scale(ctx)
v = create_layer(ctx, 'scaled', 'uint8', 'raw', 1, [64 32 8], [16 16 8], [0 0 0]);
m = v.add_scale([2 2 1]);
check(m == 1 && v.num_mips == 2 && isequal(v.available_mips, [0 1]), 'add_scale returned %d', m);
v.mip = 1;
check(isequal(v.volume_size, [32 16 8]) && isequal(v.resolution, [8 8 40]), 'mip 1 size %s', mat2str(v.volume_size));
A = test_values('uint8', [32 16 8], 3);
v(:, :, :) = A;
w = CloudVolume(new_path(ctx, 'scaled'), 'mip', 1);
check_same(w(:, :, :), A, 'mip 1 written and read through a fresh handle');
m2 = w.add_scale([4 4 1], [8 8 8]);
check(m2 == 2 && isequal(w.chunk_size, [16 16 8]), 'the current mip is unchanged by add_scale');
w.mip = 2;
check(isequal(w.chunk_size, [8 8 8]) && isequal(w.volume_size, [16 8 8]), 'mip 2');
delete(w);
delete(v);
end

function t_display(ctx)
v = CloudVolume(ctx.sample);
txt = evalc('disp(v)');
check(~isempty(strfind(txt, ctx.sample)) && ~isempty(strfind(txt, 'uint8')) && ~isempty(strfind(txt, '[-16 8 0]')), ...
      'disp: %s', txt);
delete(v);
txt = evalc('disp(v)');
check(~isempty(strfind(txt, 'deleted')), 'disp of a deleted volume: %s', txt);
end

% =========================================================================================
% The reference layers: every box read byte for byte against cloud-volume's / tensorstore's
% reads (jpeg within the manifest's tolerance), errors with their identifiers, point sets,
% chunk existence, and the layer's geometry.

function t_reference_layer(ctx, L)
path = ['file://', fullfile(ctx.ref, strrep(L.path, '/', filesep))];
cls = dtype_class(L.dtype);
handles = containers.Map();           % options (JSON) -> CloudVolume; deleted on exit
cleanup = onCleanup(@() delete_all(handles));
boxes = as_cell(L.boxes);
v = handle_for(path, struct(), handles);
% Geometry.
check(strcmp(v.data_type, L.dtype) && strcmp(v.matlab_class, cls), 'data_type %s', v.data_type);
check(v.num_channels == L.channels, 'channels %d', v.num_channels);
mips = as_cell(L.mips);
check(v.num_mips >= numel(mips), 'num_mips %d', v.num_mips);
for k = 1:numel(mips)
  mp = mips{k};
  v.mip = k - 1;
  check(isequal(v.voxel_offset, mp.voxel_offset(:).') && isequal(v.volume_size, mp.size(:).') && ...
        isequal(v.chunk_size, mp.chunk_size(:).') && isequal(v.resolution, mp.resolution(:).'), ...
        'geometry of mip %d', k - 1);
  check(isequal(v.bounds, [mp.voxel_offset(:).'; mp.voxel_offset(:).' + mp.size(:).' - 1]), 'bounds of mip %d', k - 1);
end
v.mip = 0;
nread = 0;
for b = 1:numel(boxes)
  B = boxes{b};
  opts = struct();
  if isfield(B, 'options') && isstruct(B.options)
    opts = B.options;
  end
  vol = handle_for(path, opts, handles);
  lo = B.lo(:).';
  hi = B.hi(:).' - 1;              % inclusive
  what = sprintf('box %d (%s, mip %d, [%s]..[%s])', b - 1, B.kind, B.mip, num2str(lo), num2str(hi));
  if isfield(B, 'error') && ~isempty(B.error)
    id = struct('not_found', 'cloudvolume:notFound', 'out_of_bounds', 'cloudvolume:outOfBounds');
    expect_error(@() vol.cutout(lo, hi, 'mip', B.mip), id.(B.error));
    continue;
  end
  want = read_file_bytes(fullfile(ctx.ref, strrep(B.expected, '/', filesep)));
  A = vol.cutout(lo, hi, 'mip', B.mip);
  shape = [hi - lo + 1, L.channels];
  compare(A, want, cls, shape, L.tolerance, what);
  % The same box through indexing at the handle's mip.
  vol.mip = B.mip;
  check_same(vol(lo(1):hi(1), lo(2):hi(2), lo(3):hi(3)), A, [what, ' via indexing']);
  vol.mip = 0;
  nread = nread + 1;
end
check(nread > 0 || numel(boxes) == 0, 'no box was read');
% Scattered points: n x channels; the file holds point after point, channel after channel.
if isfield(L, 'points')
  sets = as_cell(L.points);
  for s = 1:numel(sets)
    P = sets{s};
    opts = struct();
    if isfield(P, 'options') && isstruct(P.options)
      opts = P.options;
    end
    vol = handle_for(path, opts, handles);
    pts = reshape(P.points, [], 3);
    what = sprintf('point set %d (mip %d)', s - 1, P.mip);
    if isfield(P, 'error') && ~isempty(P.error)
      id = struct('not_found', 'cloudvolume:notFound', 'out_of_bounds', 'cloudvolume:outOfBounds');
      expect_error(@() vol.scattered_points(pts, 'mip', P.mip), id.(P.error));
      continue;
    end
    V = vol.scattered_points(pts, 'mip', P.mip);
    check(isequal(size(V), [size(pts, 1), L.channels]), '%s: size %s', what, mat2str(size(V)));
    want = read_file_bytes(fullfile(ctx.ref, strrep(P.expected, '/', filesep)));
    Vt = V.';
    compare(Vt(:), want, cls, [numel(Vt), 1], L.tolerance, what);
  end
end
% Chunk existence over each listed mip's whole bounds: one flag per grid cell, x fastest.
if isfield(L, 'chunks')
  sets = as_cell(L.chunks);
  for s = 1:numel(sets)
    C = sets{s};
    mp = mips{C.mip + 1};
    g = C.grid(:).';
    want = false(prod(g), 1);
    present = reshape(C.present, [], 3);
    for r = 1:size(present, 1)
      c = present(r, :);
      want(1 + c(1) + g(1) * (c(2) + g(2) * c(3))) = true;
    end
    tf = v.exists(mp.voxel_offset(:).', mp.voxel_offset(:).' + mp.size(:).' - 1, 'mip', C.mip);
    check(isequal(tf, want), 'chunk existence at mip %d: %d of %d cells differ', C.mip, sum(tf ~= want), numel(want));
  end
end
end

function v = open_with(path, opts)
args = {};
f = fieldnames(opts);
for i = 1:numel(f)
  args = [args, {f{i}, opts.(f{i})}]; %#ok<AGROW>
end
v = CloudVolume(path, args{:});
end

function v = handle_for(path, opts, handles)
key = jsonencode(opts);
if isKey(handles, key)
  v = handles(key);
else
  v = open_with(path, opts);
  handles(key) = v;
end
end

function delete_all(handles)
vols = values(handles);
for i = 1:numel(vols)
  delete(vols{i});
end
end

function compare(A, want, cls, shape, tol, what)
check(strcmp(class(A), cls), '%s: class %s, want %s', what, class(A), cls);
sz = size(A);
sz(end + 1:numel(shape)) = 1;
check(isequal(sz, shape), '%s: size %s, want %s', what, mat2str(size(A)), mat2str(shape));
got = reshape(typecast(A(:), 'uint8'), [], 1);   % (typecast of a scalar gives a row)
check(numel(got) == numel(want), '%s: %d bytes, the expected file %d', what, numel(got), numel(want));
if tol == 0
  if ~isequal(got, want)
    w = typecast(want, cls);
    i = find(A(:) ~= w(:) & ~(isnan(double(A(:))) & isnan(double(w(:)))), 1);
    if isempty(i)
      i = find(got ~= want, 1);
    end
    error('test:fail', '%s: differs from the reference (first at element %d: got %s, want %s)', what, i, ...
          num2str(double(A(i))), num2str(double(w(i))));
  end
else
  d = max(abs(double(got) - double(want)));
  check(d <= tol, '%s: differs by %d (tolerance %d)', what, d, tol);
end
end

function c = dtype_class(dtype)
switch dtype
  case 'float32'
    c = 'single';
  case 'float64'
    c = 'double';
  otherwise
    c = dtype;
end
end

% =========================================================================================
% Aligned image + segmentation cutouts (CloudVolume.imageAndSegmentationCutout) against the
% imagery fixture: ImageryClient's outputs and the model's (tests/reference/imagery_check.py),
% the cases over the Precomputed layer graphene/ws (the graphene ones need the chunkedgraph
% double of the Rust tests). Boxes here are the binding's: inclusive [lo; hi]; the manifest's
% are half-open.

% The image layer and the ws segmentation, opened as tests/imagery.rs opens them.
function [img, seg] = imagery_pair(ctx, opts_img, opts_seg)
if nargin < 2
  opts_img = {'bounded', false, 'fill_missing', true};
  opts_seg = opts_img;
end
img = CloudVolume(['file://', fullfile(ctx.ref, 'imagery', 'img')], opts_img{:});
seg = CloudVolume(['file://', fullfile(ctx.ref, 'graphene', 'ws')], opts_seg{:});
end

function cs = ws_cases(ctx)
cs = {};
all_cases = as_cell(ctx.imagery.cases);
for i = 1:numel(all_cases)
  if strcmp(all_cases{i}.seg, 'ws')
    cs{end + 1} = all_cases{i}; %#ok<AGROW>
  end
end
end

function c = imagery_case(ctx, id)
cs = ws_cases(ctx);
for i = 1:numel(cs)
  if strcmp(cs{i}.id, id)
    c = cs{i};
    return;
  end
end
error('test:fail', 'the imagery manifest has no ws case %s', id);
end

% The name-value arguments of a manifest request (its half-open bounds made inclusive).
function [bounds, args] = imagery_request(r)
b = r.bounds;
check(isequal(size(b), [2 3]), 'bounds of the manifest: %s', mat2str(size(b)));
bounds = [b(1, :); b(2, :) - 1];
args = {'Resolution', reshape(r.resolution, 1, []), 'ImageMip', r.image_mip, 'SegmentationMip', r.segmentation_mip, ...
        'ScaleToBounds', isequal(r.scale_to_bounds, true)};
if ischar(r.root_ids)
  args = [args, {'RootIds', r.root_ids}];     % 'all'
elseif isempty(r.root_ids)
  args = [args, {'RootIds', []}];             % null: every label of a Precomputed layer
else
  error('test:fail', 'root id lists are graphene cases');
end
end

function s = squeezed(sz)
s = sz(sz ~= 1);
end

function t_imagery_cases(ctx)
[img, seg] = imagery_pair(ctx);
cleanup = onCleanup(@() delete_pair(img, seg));
cs = ws_cases(ctx);
dir = fullfile(ctx.ref, 'imagery');
n_ic = 0;
n_model = 0;
for i = 1:numel(cs)
  c = cs{i};
  [bounds, args] = imagery_request(c.request);
  [I, S, g] = CloudVolume.imageAndSegmentationCutout(img, seg, bounds, args{:});
  what = sprintf('%s (%s)', c.id, c.source);
  % The grid: its shape is the arrays', ImageryClient's shape (it squeezes axes of 1).
  check(isequal(g.shape, g.hi - g.lo + 1) && isequal(g.bounds, [g.lo; g.hi]), '%s: grid fields', what);
  sz = size(S);
  sz(end + 1:3) = 1;
  check(isequal(sz, g.shape), '%s: segmentation %s, grid %s', what, mat2str(size(S)), mat2str(g.shape));
  check(isequal(squeezed(g.shape), squeezed(c.image.shape(:).')), '%s: grid shape %s, expected %s', what, ...
        mat2str(g.shape), mat2str(c.image.shape(:).'));
  check(isequal(size(I), size(S)) && isa(I, 'uint8') && isa(S, 'uint64'), '%s: img %s %s, seg %s %s', what, ...
        class(I), mat2str(size(I)), class(S), mat2str(size(S)));
  if ~isempty(c.grid)
    check(isequal(g.lo, c.grid.lo(:).') && isequal(g.hi, c.grid.hi(:).' - 1) && ...
          isequal(g.resolution, c.grid.resolution(:).'), '%s: grid [%s]..[%s] at %s, expected [%s]..[%s) at %s', ...
          what, num2str(g.lo), num2str(g.hi), mat2str(g.resolution), num2str(c.grid.lo(:).'), ...
          num2str(c.grid.hi(:).'), mat2str(c.grid.resolution(:).'));
  end
  if isfield(c.request, 'defaults')
    d = c.request.defaults;
    if isempty(c.request.image_mip)
      check(g.image_mip == d.image_mip, '%s: default image mip %d, expected %d', what, g.image_mip, d.image_mip);
    end
    if isempty(c.request.segmentation_mip)
      check(g.segmentation_mip == d.segmentation_mip, '%s: default segmentation mip %d, expected %d', what, ...
            g.segmentation_mip, d.segmentation_mip);
    end
  end
  % The grid without reading is the same.
  check(isequal(CloudVolume.alignedGrid(img, seg, bounds, args{:}), g), '%s: alignedGrid differs', what);
  % The image byte for byte; the segmentation id for id (rounded through float64 where
  % ImageryClient's scipy zoom rounded its ids).
  want = read_file_bytes(fullfile(dir, strrep(c.image.file, '/', filesep)));
  check(isequal(I(:), want), '%s: image differs (%d of %d voxels)', what, sum(I(:) ~= want(:)), numel(want));
  want = typecast(read_file_bytes(fullfile(dir, strrep(c.segmentation.file, '/', filesep))), 'uint64');
  want = want(:);
  check(any(want ~= 0), '%s: an all-zero segmentation proves little', what);
  if isfield(c, 'float64_ids') && isequal(c.float64_ids, true)
    check(isequal(uint64(double(S(:))), want), '%s: segmentation differs from ImageryClient''s (float64-rounded)', what);
    check(~isequal(S(:), want), '%s: ImageryClient''s ids were expected to be rounded', what);
  else
    check(isequal(S(:), want), '%s: segmentation differs (%d of %d voxels)', what, sum(S(:) ~= want), numel(want));
  end
  if strcmp(c.source, 'model')
    n_model = n_model + 1;
  else
    n_ic = n_ic + 1;
  end
end
check(n_ic >= 2 && n_model >= 4, '%d ImageryClient cases, %d model cases over ws', n_ic, n_model);
fprintf('     (%d ImageryClient cases, %d model cases)\n', n_ic, n_model);
end

function delete_pair(a, b)
delete(a);
delete(b);
end

function t_imagery_options(ctx)
[img, seg] = imagery_pair(ctx);
cleanup = onCleanup(@() delete_pair(img, seg));
c = imagery_case(ctx, 'same_res_precomputed');
[bounds, ~] = imagery_request(c.request);
[I, S, g] = CloudVolume.imageAndSegmentationCutout(img, seg, bounds);
check(isequal(size(S), [128 100 4]) && isequal(g.lo, bounds(1, :)) && isequal(g.hi, bounds(2, :)), ...
      'same_res_precomputed: %s, grid [%s]..[%s]', mat2str(size(S)), num2str(g.lo), num2str(g.hi));
check(g.image_mip == 1 && g.segmentation_mip == 0 && isequal(g.resolution, [8 8 40]), 'default mips and resolution');
% A centre and BboxSize: lo = centre - floor(size / 2), the box is size voxels.
[I2, S2, g2] = CloudVolume.imageAndSegmentationCutout(img, seg, [164 130 22], 'BboxSize', [128 100 4]);
check(isequal(I2, I) && isequal(S2, S) && isequal(g2, g), 'centre + BboxSize is the same box');
[I3, S3, g3] = CloudVolume.imageAndSegmentationCutout(img, seg, [164 130 22], 'BboxSize', [5 4 3]);
check(isequal(g3.lo, [162 128 21]) && isequal(g3.hi, [166 131 23]), 'odd BboxSize: [%s]..[%s]', num2str(g3.lo), ...
      num2str(g3.hi));
check(isequal(I3, I(63:67, 49:52, 2:4)) && isequal(S3, S(63:67, 49:52, 2:4)), 'odd BboxSize: the sub-box');
g4 = CloudVolume.alignedGrid(img, seg, [164 130 22], 'BboxSize', [7 6]);
check(isequal(g4.lo, [161 127 22]) && isequal(g4.shape, [7 6 1]), 'BboxSize [w h]: depth 1, [%s]..[%s]', ...
      num2str(g4.lo), num2str(g4.hi));
% ImageryClient's names (snake case) are the same options; explicit mips equal the defaults.
[I5, S5] = CloudVolume.imageAndSegmentationCutout(img, seg, bounds, 'image_mip', 1, 'segmentation_mip', 0, ...
                                                  'resolution', [8 8 40], 'root_ids', 'all');
check(isequal(I5, I) && isequal(S5, S), 'snake-case names and explicit defaults');
% Another image mip, the box still in 8 nm voxels: the grid stays at the finer layer's
% resolution, the image is resampled. (Without 'Resolution' the box would be in voxels of the
% image's mip 2, 16 nm: twice as far.)
[I6, S6, g6] = CloudVolume.imageAndSegmentationCutout(img, seg, bounds, 'ImageMip', 2, 'Resolution', [8 8 40]);
check(g6.image_mip == 2 && isequal(g6.lo, g.lo) && isequal(g6.hi, g.hi) && isequal(S6, S) && ~isequal(I6, I) && ...
      isequal(size(I6), size(I)), 'ImageMip 2');
g6b = CloudVolume.alignedGrid(img, seg, bounds, 'ImageMip', 2);
check(isequal(g6b.lo, [2 * bounds(1, 1:2), bounds(1, 3)]) && isequal(g6b.resolution, [8 8 40]), ...
      'ImageMip 2 without Resolution: the box in 16 nm voxels, [%s]..[%s]', num2str(g6b.lo), num2str(g6b.hi));
check(isequal(I6(1:2:end, 1:2:end, :), I6(2:2:end, 2:2:end, :)), 'ImageMip 2: each 16 nm voxel repeated at 8 nm');
% RootIds: only those labels are kept; the rest become 0 (the image is untouched).
ids = unique(S(S ~= 0));
check(numel(ids) > 10 && any(ids > uint64(2)^53), '%d labels, beyond 2^53: %d', numel(ids), any(ids > uint64(2)^53));
keep = ids([1 5 end]);
[I7, S7] = CloudVolume.imageAndSegmentationCutout(img, seg, bounds, 'RootIds', keep);
want = S;
want(~ismember(S, keep)) = 0;
check(isequal(S7, want) && isequal(I7, I) && any(S7(:) ~= 0), 'RootIds keeps those labels only');
% Split masks: one per label in ascending order, each seg == id; 0 with IncludeNullRoot.
[I8, M, g8] = CloudVolume.imageAndSegmentationCutout(img, seg, bounds, 'SplitSegmentations', true);
check(isequal(I8, I) && isequal(g8, g) && isstruct(M) && isequal(fieldnames(M), {'id'; 'mask'}), 'split: a struct array');
check(numel(M) == numel(ids) && isequal(vertcat(M.id), ids), 'split: %d masks for %d labels', numel(M), numel(ids));
for k = 1:numel(M)
  check(isa(M(k).id, 'uint64') && islogical(M(k).mask) && isequal(M(k).mask, S == M(k).id), 'mask of %s', ...
        num2str(M(k).id));
end
check(any(S(:) == 0), 'the box has background (label 0)');
[~, M0] = CloudVolume.imageAndSegmentationCutout(img, seg, bounds, 'SplitSegmentations', true, 'IncludeNullRoot', true);
check(numel(M0) == numel(ids) + 1 && M0(1).id == 0 && isequal(M0(1).mask, S == 0) && ...
      isequal(vertcat(M0(2:end).id), ids) && isequal(M0(end).mask, M(end).mask), 'IncludeNullRoot adds label 0 first');
[~, Mk] = CloudVolume.imageAndSegmentationCutout(img, seg, bounds, 'SplitSegmentations', 1, 'RootIds', keep);
check(isequal(vertcat(Mk.id), keep) && isequal(Mk(2).mask, S == keep(2)), 'split with RootIds');
% splitSegmentation by itself, on any uint64 array; other integer classes are converted.
Q = uint64([7 0 2; 2 2 0]);
P = CloudVolume.splitSegmentation(Q);
check(numel(P) == 2 && P(1).id == 2 && P(2).id == 7 && isequal(P(1).mask, Q == 2) && isequal(P(2).mask, Q == 7), ...
      'splitSegmentation of a 2x3 array');
P0 = CloudVolume.splitSegmentation(double(Q), 'include_null_root', true);
check(numel(P0) == 3 && P0(1).id == 0 && isequal(P0(1).mask, Q == 0), 'splitSegmentation with label 0');
E = CloudVolume.splitSegmentation(zeros(2, 2, 'uint64'));
check(isempty(E) && isstruct(E), 'no labels: no masks');
% ScaleToBounds: exactly the box at the resolution asked for (4 nm: each 8 nm voxel twice).
[I9, S9, g9] = CloudVolume.imageAndSegmentationCutout(img, seg, [200 160 20; 263 223 21], 'Resolution', [4 4 40], ...
                                                      'ScaleToBounds', true);
check(isequal(g9.lo, [200 160 20]) && isequal(g9.hi, [263 223 21]) && isequal(g9.resolution, [4 4 40]) && ...
      isequal(size(S9), [64 64 2]), 'ScaleToBounds grid [%s]..[%s]', num2str(g9.lo), num2str(g9.hi));
check(isequal(S9(1:2:end, 1:2:end, :), S(1:32, 1:32, 1:2)) && isequal(I9(2:2:end, 2:2:end, :), I(1:32, 1:32, 1:2)), ...
      'ScaleToBounds at 4 nm repeats the 8 nm voxels');
% Without ScaleToBounds the same request is on the 8 nm grid (the box converted).
g10 = CloudVolume.alignedGrid(img, seg, [200 160 20; 263 223 21], 'Resolution', [4 4 40]);
check(isequal(g10.lo, [100 80 20]) && isequal(g10.hi, [131 111 21]) && isequal(g10.resolution, [8 8 40]), ...
      'the 4 nm box on the 8 nm grid: [%s]..[%s]', num2str(g10.lo), num2str(g10.hi));
end

% Whether each pixel of the x-y label slice S has a pixel of another label within n pixels
% (city block) inside the slice.
function near = near_other_label(S, n)
[w, h] = size(S);
near = false(w, h);
for dx = -n:n
  for dy = -(n - abs(dx)):(n - abs(dx))
    if dx == 0 && dy == 0
      continue;
    end
    xs = max(1, 1 - dx):min(w, w - dx);
    ys = max(1, 1 - dy):min(h, h - dy);
    near(xs, ys) = near(xs, ys) | S(xs + dx, ys + dy) ~= S(xs, ys);
  end
end
end

function t_imagery_overlay(ctx)
[img, seg] = imagery_pair(ctx);
cleanup = onCleanup(@() delete_pair(img, seg));
c = imagery_case(ctx, 'same_res_precomputed');
[bounds, ~] = imagery_request(c.request);
[I, S] = CloudVolume.imageAndSegmentationCutout(img, seg, bounds);
grey = I(:, :, 2);
s = S(:, :, 2);
[w, h] = size(grey);
ids = unique(s(s ~= 0));
check(numel(ids) >= 5 && any(s(:) == 0), 'slice: %d labels', numel(ids));
% Colours: n x 3 uint8, one call or one per id alike, distinct for the slice's labels.
C = CloudVolume.segmentColor(ids);
check(isa(C, 'uint8') && isequal(size(C), [numel(ids), 3]), 'segmentColor: %s %s', class(C), mat2str(size(C)));
for k = [1, 3, numel(ids)]
  check(isequal(CloudVolume.segmentColor(ids(k)), C(k, :)), 'segmentColor of one id');
end
check(size(unique(C, 'rows'), 1) == numel(ids), '%d colours for %d labels', size(unique(C, 'rows'), 1), numel(ids));
check(isequal(CloudVolume.segmentColor(ids(1)), CloudVolume.segmentColor(ids(1))) && ...
      ~isequal(CloudVolume.segmentColor(1), CloudVolume.segmentColor(2)), 'colours are stable and differ');
% The blend of every pixel: round(grey * (1 - a) + colour * a) where the label is not 0.
[~, slot] = ismember(s, ids);
for a = [0.5, 0.6, 1]
  if a == 0.5
    rgb = CloudVolume.overlayRgb(grey, s);            % the default alpha
  else
    rgb = CloudVolume.overlayRgb(grey, s, 'Alpha', a);
  end
  check(isa(rgb, 'uint8') && isequal(size(rgb), [w h 3]), 'overlayRgb: %s %s', class(rgb), mat2str(size(rgb)));
  af = double(single(a));                              % the library's alpha is a float
  for ch = 1:3
    col = zeros(w, h);
    col(slot > 0) = double(C(slot(slot > 0), ch));
    want = double(grey);
    on = s ~= 0;
    want(on) = round(double(grey(on)) * (1 - af) + col(on) * af);
    got = double(rgb(:, :, ch));
    check(isequal(got, want), 'alpha %g, channel %d: %d of %d pixels differ', a, ch, sum(got(:) ~= want(:)), w * h);
  end
end
% Outlines: only pixels with another label within 2 pixels are coloured (alpha 1: the colour).
rgb = CloudVolume.overlayRgb(grey, s, 'Alpha', 1, 'Outline', 2);
edge = s ~= 0 & near_other_label(s, 2);
check(sum(edge(:)) > 100 && sum(s(:) ~= 0 & ~edge(:)) > 100, '%d outline pixels, %d inside', sum(edge(:)), ...
      sum(s(:) ~= 0 & ~edge(:)));
for ch = 1:3
  want = double(grey);
  want(edge) = double(C(slot(edge), ch));
  got = double(rgb(:, :, ch));
  check(isequal(got, want), 'outline 2, channel %d: %d pixels differ', ch, sum(got(:) ~= want(:)));
end
% The PNG: signature, an IHDR of w x h, 8-bit RGB; its pixels are overlayRgb's.
png = CloudVolume.overlayPng(grey, s, 'Alpha', 0.6);
check(isa(png, 'uint8') && iscolumn(png) && numel(png) > 33, 'overlayPng: %s %s', class(png), mat2str(size(png)));
check(isequal(png(1:8).', uint8([137 80 78 71 13 10 26 10])), 'PNG signature %s', mat2str(png(1:8).'));
be32 = @(b) double(b(1)) * 2^24 + double(b(2)) * 2^16 + double(b(3)) * 2^8 + double(b(4));
check(strcmp(char(png(13:16).'), 'IHDR') && be32(png(17:20)) == w && be32(png(21:24)) == h && png(25) == 8 && ...
      png(26) == 2, 'PNG header: %s %dx%d depth %d colour type %d', char(png(13:16).'), be32(png(17:20)), ...
      be32(png(21:24)), png(25), png(26));
check(~isequal(CloudVolume.overlayPng(grey, s, 'Alpha', 0.2), png), 'another alpha, another PNG');
f = fullfile(ctx.tmp, 'overlay.png');
write_file_bytes(f, png);
decoded = [];
try
  decoded = imread(f);
catch
  fprintf('     (imread cannot read PNG here: the PNG''s pixels not decoded)\n');
end
if ~isempty(decoded)
  want = permute(CloudVolume.overlayRgb(grey, s, 'Alpha', 0.6), [2 1 3]);
  check(isequal(decoded, want), 'the decoded PNG (%s) is not overlayRgb''s picture', mat2str(size(decoded)));
end
% Bad pictures and options.
ia = 'cloudvolume:invalidArgument';
expect_error(@() CloudVolume.overlayRgb(grey, s, 'Alpha', 1.5), ia, 'alpha');   % the library's
expect_error(@() CloudVolume.overlayPng(grey, s, 'Alpha', -0.1), ia, 'alpha');
expect_error(@() CloudVolume.overlayRgb(uint16(grey), s), ia, 'uint8');
expect_error(@() CloudVolume.overlayRgb(grey, s(1:end - 1, :)), ia, 'the segmentation is [127 100]');
expect_error(@() CloudVolume.overlayRgb(I(:, :, 1:2), S(:, :, 1:2)), ia, 'x-y');
expect_error(@() CloudVolume.overlayRgb(grey, -double(s)), ia, 'non-negative');
expect_error(@() CloudVolume.overlayRgb(grey, s, 'Outline', -1), ia, 'Outline');
expect_error(@() CloudVolume.overlayRgb(grey, s, 'Outline', 1000), ia, 'outline');   % the library's
expect_error(@() CloudVolume.overlayRgb(grey, s, 'Colour', 1), ia, 'alpha, outline');
expect_error(@() CloudVolume.overlayRgb(grey, s, 'Alpha'), ia, 'pairs');
expect_error(@() CloudVolume.segmentColor('a'), ia, 'segment ids');
end

function t_imagery_errors(ctx)
ia = 'cloudvolume:invalidArgument';
% The library's refusals, as tests/imagery.rs makes them (a bounded segmentation handle).
[img, seg] = imagery_pair(ctx, {'fill_missing', true}, {});
cleanup = onCleanup(@() delete_pair(img, seg));
base = [100 80 20; 163 143 20];
[~, S] = CloudVolume.imageAndSegmentationCutout(img, seg, base);
check(isequal(size(S), [64 64]), 'the base request reads: %s', mat2str(size(S)));
err = expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, [100 80 20; 99 143 20]), ia, 'empty');
check(~isempty(strfind(err.message, '[100,80,20]')), 'the message names the box: %s', err.message);
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, [100 80 20; 163 70 20]), ia, 'inverted');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base, 'ImageMip', 9), ia, 'mip 9');
expect_error(@() CloudVolume.alignedGrid(img, seg, base, 'SegmentationMip', 7), ia, 'mip 7');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base, 'Resolution', [-4 4 40]), ia, 'resolution');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, [400 300 20; 400 300 20], 'Resolution', [4 4 40]), ...
             ia, 'less than one voxel');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, [0 0 0; 63 63 0]), 'cloudvolume:outOfBounds');
% The image layer as the segmentation: not a label layer (the library names it and its type).
err = expect_error(@() CloudVolume.imageAndSegmentationCutout(seg, img, base), ia, 'uint8');
check(~isempty(strfind(err.message, 'img')), 'the message names the layer: %s', err.message);
% The binding's own checks.
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base.'), ia, '2x3');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, [100.5 80 20; 163 143 20]), ia, 'integers');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base, 'BboxSize', [0 4 1]), ia, 'BboxSize');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base, 'BboxSize', [4 4 1]), ia, 'centre');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base, 'RootIds', 'some'), ia, 'RootIds');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base, 'RootIds', [-1 2]), ia, 'RootIds');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base, 'ImageMip', -1), ia, 'ImageMip');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base, 'Resolution', [4 4]), ia, 'Resolution');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base, 'ScaleToBounds', 2), ia, 'ScaleToBounds');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base, 'mip', 1), ia, 'ImageMip');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, seg, base, 'ImageMip'), ia, 'pairs');
expect_error(@() CloudVolume.alignedGrid(img, seg, base, 'SplitSegmentations', true), ia, 'takes the options');
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, 'ws', base), ia, 'usage');
expect_error(@() CloudVolume.splitSegmentation(uint64([1 2]), 'IncludeNullRoot', 'yes'), ia, 'IncludeNullRoot');
w = CloudVolume(seg.cloudpath);
delete(w);
expect_error(@() CloudVolume.imageAndSegmentationCutout(img, w, base), 'cloudvolume:invalidHandle', 'deleted');
end

% =========================================================================================
% Services: DVID data instances (tests/servers/dvid.py) and BOSS channels (tests/servers/boss.py
% with intern's cutouts), as tests/dvid.rs and tests/boss.rs drive them.

% A new repo on the DVID double, and the URL of instance `name` in it.
function [url, uuid] = dvid_instance(ctx, name)
uuid = CloudVolume.dvidCreateRepo(ctx.dvid, 'Alias', ['octave-', name], 'Description', 'MATLAB binding tests');
url = sprintf('dvid://%s/%s/%s', ctx.dvid, uuid, name);
end

% The box lo .. hi (inclusive) of data A written at wlo: A's voxels where they meet, 0 elsewhere.
function E = expected_box(A, wlo, lo, hi)
sz = size(A);
sz(end + 1:4) = 1;
E = zeros([hi - lo + 1, sz(4)], class(A));
whi = wlo + sz(1:3) - 1;
a = max(lo, wlo);
b = min(hi, whi);
if all(b >= a)
  E(a(1) - lo(1) + 1:b(1) - lo(1) + 1, a(2) - lo(2) + 1:b(2) - lo(2) + 1, a(3) - lo(3) + 1:b(3) - lo(3) + 1, :) = ...
    A(a(1) - wlo(1) + 1:b(1) - wlo(1) + 1, a(2) - wlo(2) + 1:b(2) - wlo(2) + 1, a(3) - wlo(3) + 1:b(3) - wlo(3) + 1, :);
end
end

function t_dvid_image(ctx)
[url, uuid] = dvid_instance(ctx, 'grey16');
check(ischar(uuid) && numel(uuid) == 32 && all(ismember(uuid, '0123456789abcdef')), 'the repo UUID: %s', uuid);
other = CloudVolume.dvidCreateRepo(ctx.dvid);            % alias and description default to ''
check(numel(other) == 32 && ~strcmp(other, uuid), 'a second repo: %s', other);
% A uint16 uint16blk instance: block size = the chunk size, voxel size = the resolution.
info = CloudVolume.create_new_info(1, 'image', 'uint16', 'raw', [4 4 40], [0 0 0], [1 1 1], [32 32 32]);
v = CloudVolume(url, 'info', info, 'bounded', false);
cleanup = onCleanup(@() delete(v));
check(strcmp(v.data_type, 'uint16') && strcmp(v.matlab_class, 'uint16') && v.num_channels == 1, ...
      'the instance: %s, %d channel(s)', v.data_type, v.num_channels);
check(isequal(v.chunk_size, [32 32 32]) && isequal(v.resolution, [4 4 40]), 'chunk %s, resolution %s', ...
      mat2str(v.chunk_size), mat2str(v.resolution));
check(strcmp(v.layer_type, 'image'), 'layer type %s', v.layer_type);
% An aligned write (two blocks by two by one), read back from a fresh handle: its bounds are
% the extents written.
wlo = [32 64 0];
A = test_values('uint16', [64 64 32], 11);
v.write(wlo, A);
f = CloudVolume(url, 'bounded', false);
fcl = onCleanup(@() delete(f));
check(isequal(f.bounds, [32 64 0; 95 127 31]), 'the extents: %s', mat2str(f.bounds));
for h = {v, f}
  check_same(h{1}.cutout([32 64 0], [95 127 31]), A, 'the aligned box');
  check_same(h{1}.cutout([64 96 0], [95 127 31]), A(33:64, 33:64, :), 'one aligned block');
  % Unaligned boxes: inside, across the edges (zeros outside: bounded=false), outside.
  for b = {[33 65 1; 94 126 30], [20 60 0; 69 99 19], [90 120 28; 139 149 59], [0 0 40; 9 9 41]}
    lo = b{1}(1, :);
    hi = b{1}(2, :);
    check_same(h{1}.cutout(lo, hi), expected_box(A, wlo, lo, hi), sprintf('the box %s', mat2str(b{1})));
  end
end
check_same(f(40:80, 70:100, 3:29), A(9:49, 7:37, 4:30), 'indexing');
check(all(all(all(f.cutout([200 0 0], [263 63 31]) == 0))), 'unwritten voxels read 0');
% bounded (the default): the extents are the bounds.
b = CloudVolume(url);
bcl = onCleanup(@() delete(b));
check_same(b.cutout([33 65 1], [94 126 30]), A(2:63, 2:63, 2:31), 'bounded, inside');
expect_error(@() b.cutout([20 60 0], [69 99 19]), 'cloudvolume:outOfBounds');
% An unaligned write is refused, naming the block size, and changes nothing.
err = expect_error(@() v.write([40 70 5], ones(20, 20, 10, 'uint16')), 'cloudvolume:invalidArgument', '32x32x32');
check(~isempty(strfind(err.message, 'non_aligned_writes')), 'the message names the option: %s', err.message);
check_same(f.cutout([32 64 0], [95 127 31]), A, 'after the refused write');
% With non_aligned_writes the blocks around are read, painted and written back.
na = CloudVolume(url, 'non_aligned_writes', true, 'bounded', false);
ncl = onCleanup(@() delete(na));
P = test_values('uint16', [20 20 10], 12);
na.write([40 70 5], P);
W = A;
W(9:28, 7:26, 6:15) = P;
check_same(na.cutout([32 64 0], [95 127 31]), W, 'the non-aligned write');
% A uuid prefix names the same node.
s = CloudVolume(sprintf('dvid://%s/%s/grey16', ctx.dvid, uuid(1:8)), 'bounded', false);
scl = onCleanup(@() delete(s));
check_same(s.cutout([32 64 0], [95 127 31]), W, 'through a uuid prefix');
end

function t_dvid_labelmap(ctx)
url = dvid_instance(ctx, 'labels');
% uint64 segmentation: a labelmap with 64^3 blocks (a multiple of 16, as labelmap needs).
info = CloudVolume.create_new_info(1, 'segmentation', 'uint64', 'raw', [8 8 8], [0 0 0], [1 1 1], [64 64 64]);
v = CloudVolume(url, 'info', info, 'bounded', false);
cleanup = onCleanup(@() delete(v));
check(strcmp(v.data_type, 'uint64') && strcmp(v.layer_type, 'segmentation') && isequal(v.chunk_size, [64 64 64]), ...
      'the instance: %s %s %s', v.data_type, v.layer_type, mat2str(v.chunk_size));
[x, y, z] = ndgrid(0:127, 0:63, 0:63);
k = floor(x / 7) + 3 * floor(y / 5) + 11 * floor(z / 4);
L = uint64(2)^40 + uint64(mod(k, 9));                    % beyond 2^32 (LZ4 bodies both ways)
L(mod(k, 9) == 0) = 0;
v.write([0 0 0], L);
f = CloudVolume(url, 'bounded', false);
fcl = onCleanup(@() delete(f));
check(isequal(f.bounds, [0 0 0; 127 63 63]), 'the extents: %s', mat2str(f.bounds));
check_same(f.cutout([0 0 0], [127 63 63]), L, 'the aligned box');
for b = {[3 5 7; 60 58 49], [100 40 50; 150 80 70], [-10 -10 0; 5 5 3]}
  lo = b{1}(1, :);
  hi = b{1}(2, :);
  check_same(f.cutout(lo, hi), expected_box(L, [0 0 0], lo, hi), sprintf('the box %s', mat2str(b{1})));
end
% Label operations over DVID.
lo = [3 5 7];
hi = [60 58 49];
C = f.cutout(lo, hi);
[labels, counts] = f.unique(lo, hi);
check(isequal(labels, unique(C(:))) && numel(labels) >= 5, 'unique: %d labels', numel(labels));
check(isequal(counts, uint64(arrayfun(@(l) sum(C(:) == l), labels))), 'unique counts');
M = f.labelMask(lo, hi, labels(end));
check(islogical(M) && isequal(M, C == labels(end)), 'labelMask');
[R, back] = f.renumber(lo, hi);
check(isequal(back(double(R) + 1), C), 'renumber');
% An unaligned write is refused, naming the block size.
err = expect_error(@() v.write([10 20 30], L(1:40, 1:40, 1:10)), 'cloudvolume:invalidArgument', '64x64x64');
check(~isempty(strfind(err.message, 'non_aligned_writes')), 'the message names the option: %s', err.message);
check_same(f.cutout([0 0 0], [127 63 63]), L, 'after the refused write');
end

function t_dvid_rgba(ctx)
url = dvid_instance(ctx, 'rgba');
% 4-channel uint8: an rgba8blk instance.
info = CloudVolume.create_new_info(4, 'image', 'uint8', 'raw', [4 4 40], [0 0 0], [1 1 1], [32 32 32]);
v = CloudVolume(url, 'info', info, 'bounded', false);
cleanup = onCleanup(@() delete(v));
check(v.num_channels == 4 && strcmp(v.data_type, 'uint8'), 'the instance: %s, %d channel(s)', v.data_type, ...
      v.num_channels);
A = test_values('uint8', [64 32 32 4], 21);
v.write([0 32 0], A);
f = CloudVolume(url, 'bounded', false);
fcl = onCleanup(@() delete(f));
check(isequal(f.shape, [64 32 32 4]), 'the shape: %s', mat2str(f.shape));
check_same(f.cutout([0 32 0], [63 63 31]), A, 'x-y-z-channel');
% Channel first: [c x y z], pydvid's cxyz (c fastest in memory, then x, y, z).
B = f.download([0 32 0], [63 63 31], 'ChannelFirst', true);
check(isa(B, 'uint8') && isequal(size(B), [4 64 32 32]), 'ChannelFirst: %s %s', class(B), mat2str(size(B)));
check_same(B, permute(A, [4 1 2 3]), 'ChannelFirst');
for p = [1 1 1; 64 32 32; 17 5 30; 40 29 2].'
  check(isequal(B(:, p(1), p(2), p(3)), reshape(A(p(1), p(2), p(3), :), 4, 1)), 'voxel %s', mat2str(p.'));
end
% In memory: voxel after voxel, each one's 4 channels together (DVID's packed rgba8 voxels).
n = 64 * 32 * 32;
check(isequal(B(1:4), reshape(A(1, 1, 1, :), 1, 4)) && isequal(B(5:8), reshape(A(2, 1, 1, :), 1, 4)) && ...
      isequal(B(4 * n - 3:4 * n), reshape(A(64, 32, 32, :), 1, 4)), 'channel-first memory order');
% An unaligned box across the edge, and the option's spellings and default.
lo = [50 20 10];
hi = [79 40 35];
B2 = f.download(lo, hi, 'channel_first', 1);
check_same(B2, permute(expected_box(A, [0 32 0], lo, hi), [4 1 2 3]), 'ChannelFirst, unaligned');
check_same(f.download(lo, hi, 'ChannelFirst', false), f.cutout(lo, hi), 'ChannelFirst false');
check_same(f.download(lo, hi, 'mip', 0, 'channelfirst', true), B2, 'the option''s spelling');
ia = 'cloudvolume:invalidArgument';
expect_error(@() f.download(lo, hi, 'ChannelFirst', 'yes'), ia, 'ChannelFirst');
expect_error(@() f.download(lo, hi, 'ChannelFirst'), ia, 'pairs');
% One channel: still [1 x y z]; the label mask too (a uint64 labelmap).
one = CloudVolume.create_new_info(1, 'segmentation', 'uint64', 'raw', [4 4 40], [0 0 0], [1 1 1], [32 32 32]);
lurl = dvid_instance(ctx, 'seg1');
s = CloudVolume(lurl, 'info', one, 'bounded', false);
scl = onCleanup(@() delete(s));
% (Two blocks: a write of exactly one label block is split by the library into two halves,
% which DVID refuses as unaligned.)
S = uint64(test_values('uint16', [64 32 32], 22));
s.write([0 0 0], S);
S1 = s.download([0 0 0], [63 31 31], 'ChannelFirst', true);
check(isequal(size(S1), [1 64 32 32]) && isequal(reshape(S1, 64, 32, 32), S), 'one channel first: %s', ...
      mat2str(size(S1)));
M1 = s.download([0 0 0], [63 31 31], 'label', S(1), 'ChannelFirst', true);
check(islogical(M1) && isequal(size(M1), [1 64 32 32]) && isequal(reshape(M1, 64, 32, 32), S == S(1)), ...
      'a channel-first label mask');
end

function t_dvid_errors(ctx)
[url, uuid] = dvid_instance(ctx, 'img');
info = CloudVolume.create_new_info(1, 'image', 'uint8', 'raw', [8 8 8], [0 0 0], [1 1 1], [32 32 32]);
v = CloudVolume(url, 'info', info);
delete(v);
% An unknown instance and node: the binding's not-found error, naming them.
expect_error(@() CloudVolume(sprintf('dvid://%s/%s/nosuch', ctx.dvid, uuid)), 'cloudvolume:notFound', 'nosuch');
expect_error(@() CloudVolume(sprintf('dvid://%s/ffff/img', ctx.dvid)), 'cloudvolume:notFound', 'ffff');
% A name taken; a type DVID has none of (float64); a bad URL.
expect_error(@() CloudVolume(url, 'info', info), 'cloudvolume:invalidArgument', 'already exists');
f64 = CloudVolume.create_new_info(1, 'image', 'float64', 'raw', [8 8 8], [0 0 0], [1 1 1], [32 32 32]);
expect_error(@() CloudVolume(sprintf('dvid://%s/%s/f64', ctx.dvid, uuid), 'info', f64), 'cloudvolume:unsupported');
expect_error(@() CloudVolume(sprintf('dvid://%s/not-hex/img', ctx.dvid)), 'cloudvolume:invalidArgument');
% dvidCreateRepo's arguments.
ia = 'cloudvolume:invalidArgument';
expect_error(@() CloudVolume.dvidCreateRepo(), ia, 'usage');
expect_error(@() CloudVolume.dvidCreateRepo(ctx.dvid, 'Alias'), ia, 'pairs');
expect_error(@() CloudVolume.dvidCreateRepo(ctx.dvid, 'Alias', 3), ia, 'Alias');
expect_error(@() CloudVolume.dvidCreateRepo(42), ia, 'server');
expect_error(@() CloudVolume.dvidCreateRepo(ctx.dvid, 'colour', 'red'), ia, 'colour');   % the library's
u = CloudVolume.dvidCreateRepo(['dvid://', ctx.dvid], 'Description', 'through dvid://', 'timeout', 30);
check(numel(u) == 32, 'a repo through dvid://: %s', u);
end

% OCP / ndstore: h5py posted every channel (tests/reference/ocp_h5py.py) and read it back; the
% binding reads the same boxes with each ocp_format.
function t_ocp_h5py(ctx)
m = jsondecode(fileread(fullfile(ctx.ocp_dir, 'manifest.json')));
cs = as_cell(m.cases);
check(numel(cs) == 10, '%d h5py cases', numel(cs));
n = 0;
formats = {'npz', 'raw', 'hdf5'};
for f = 1:numel(formats)
  for i = 1:numel(cs)
    c = cs{i};
    url = sprintf('ocp://%s/%s/%s', ctx.ocp, m.project, c.channel);
    v = CloudVolume(url, 'ocp_format', formats{f});
    cleanup = onCleanup(@() delete(v));
    cls = dtype_class(c.dtype);
    check(strcmp(v.matlab_class, cls), '%s: class %s, h5py %s', url, v.matlab_class, c.dtype);
    check(v.num_mips == 2, '%s: %d mips', url, v.num_mips);
    lo = reshape(c.lo, 1, 3);
    hi = reshape(c.hi, 1, 3);
    A = v.cutout(lo, hi - 1, 'mip', c.res);
    want = reshape(typecast(read_file_bytes(fullfile(ctx.ocp_dir, c.file)), cls), hi - lo);
    check_same(A, want, sprintf('%s as %s res %d', url, formats{f}, c.res));
    check(any(A(:) ~= 0), '%s as %s: all zero', url, formats{f});
    n = n + 1;
    clear cleanup;
  end
end
check(n == 30, '%d cases', n);
end

function t_ocp_errors(ctx)
m = jsondecode(fileread(fullfile(ctx.ocp_dir, 'manifest.json')));
base = sprintf('ocp://%s/%s/', ctx.ocp, m.project);
% A write (npz; non-zero values, as ndstore keeps only those) read back from the hdf5 answer;
% past the manifest's boxes (z >= 40), which other runs against the same double read.
w = CloudVolume([base, 'img16']);
wc = onCleanup(@() delete(w));
A = uint16(test_values('uint16', [90 70 9], 5)) + 1;
w.write([150 80 42], A);
r = CloudVolume([base, 'img16'], 'ocp_format', 'hdf5');
rc = onCleanup(@() delete(r));
check_same(r.cutout([150 80 42], [239 149 50]), A, 'an npz write read back as hdf5');
% Outside the image (bounded): refused before any request; an unknown channel; other formats.
expect_error(@() r.cutout([0 0 0], [9 9 0]), 'cloudvolume:outOfBounds');
expect_error(@() CloudVolume([base, 'nope']), 'cloudvolume:notFound', 'nope');
expect_error(@() CloudVolume([base, 'img8'], 'ocp_format', 'blosc'), 'cloudvolume:unsupported', 'ocp_format');
expect_error(@() CloudVolume([base, 'img8'], 'ocp_format', 'tif'), 'cloudvolume:invalidArgument', 'ocp_format');
end

% The BOSS: its host from CV_BOSS_URL_BASE (boss://http://HOST/col/exp).
function [secrets, host] = boss_secrets(ctx, token)
t = regexp(ctx.boss, '^boss://(https?)://([^/]+)/', 'tokens', 'once');
check(numel(t) == 2, 'CV_BOSS_URL_BASE is not boss://http(s)://HOST/...: %s', ctx.boss);
host = t{2};
secrets = struct('protocol', t{1}, 'host', host, 'token', token);
end

function t_boss_intern(ctx)
m = jsondecode(fileread(fullfile(ctx.boss_dir, 'manifest.json')));
cs = as_cell(m.cases);
check(numel(cs) == 12, '%d intern cases', numel(cs));
secrets = boss_secrets(ctx, ctx.boss_token);
want_class = struct('img8', 'uint8', 'img16', 'uint16', 'ann64', 'uint64');
names = fieldnames(want_class);
hs = containers.Map();                               % a handle: the cleanup sees every entry
cleanup = onCleanup(@() delete_all(hs));
for k = 1:numel(names)
  hs(names{k}) = CloudVolume([ctx.boss, '/', names{k}], 'secrets', secrets, 'bounded', false);
  handles.(names{k}) = hs(names{k});
end
n = 0;
for i = 1:numel(cs)
  c = cs{i};
  ch = c.channel;
  check(isfield(handles, ch), 'the manifest names channel %s', ch);
  v = handles.(ch);
  cls = dtype_class(c.dtype);
  check(strcmp(v.matlab_class, cls) && strcmp(cls, want_class.(ch)), '%s: class %s, manifest %s', ch, ...
        v.matlab_class, c.dtype);
  lo = reshape(c.lo, 1, 3);
  hi = reshape(c.hi, 1, 3);                           % half-open, as intern's ranges
  A = v.cutout(lo, hi - 1, 'mip', c.res);
  want = reshape(typecast(read_file_bytes(fullfile(ctx.boss_dir, c.file)), cls), hi - lo);
  check_same(A, want, sprintf('%s res %d %s-%s', ch, c.res, mat2str(lo), mat2str(hi)));
  check(any(A(:) ~= 0), '%s case %d: all zero', ch, i);
  n = n + 1;
end
check(n == 12, '%d cases', n);
% The info: three levels, the frame as bounds, the annotation channel a segmentation.
a = handles.ann64;
check(a.num_mips == 3 && isequal(a.bounds, [100 0 0; 1123 1023 63]), 'ann64: %d mips, bounds %s', a.num_mips, ...
      mat2str(a.bounds));
check(strcmp(a.layer_type, 'segmentation') && strcmp(handles.img8.layer_type, 'image'), 'layer types');
a.mip = 1;
check(isequal(a.resolution, [8 8 40]), 'mip 1 resolution %s', mat2str(a.resolution));
a.mip = 0;
% Label operations over the annotation channel: unique of the first case's box.
c = cs{find(cellfun(@(c) strcmp(c.channel, 'ann64') && c.res == 0, cs), 1)};
C = a.cutout(reshape(c.lo, 1, 3), reshape(c.hi, 1, 3) - 1);
labels = a.unique(reshape(c.lo, 1, 3), reshape(c.hi, 1, 3) - 1);
check(isequal(labels, unique(C(:))) && all(labels > uint64(2)^50), 'ann64 unique: %d labels', numel(labels));
% The token alone (the URL names the server): the same voxels.
t = CloudVolume([ctx.boss, '/', cs{1}.channel], 'secrets', ctx.boss_token, 'bounded', false);
tcl = onCleanup(@() delete(t));
lo = reshape(cs{1}.lo, 1, 3);
hi = reshape(cs{1}.hi, 1, 3);
check_same(t.cutout(lo, hi - 1, 'mip', cs{1}.res), ...
           reshape(typecast(read_file_bytes(fullfile(ctx.boss_dir, cs{1}.file)), dtype_class(cs{1}.dtype)), hi - lo), ...
           'with the token as secrets');
end

function t_boss_errors(ctx)
[secrets, host] = boss_secrets(ctx, ctx.boss_token);
url = [ctx.boss, '/img8'];
% A wrong token: the binding's auth error, naming the host, never the token.
bad = boss_secrets(ctx, 'not-the-token');
err = expect_error(@() CloudVolume(url, 'secrets', bad), 'cloudvolume:auth');
check(~isempty(strfind(err.message, host)) && isempty(strfind(err.message, 'not-the-token')), ...
      'the auth message: %s', err.message);
err = expect_error(@() CloudVolume(url, 'secrets', 'not-the-token'), 'cloudvolume:auth');
check(isempty(strfind(err.message, 'not-the-token')), 'the auth message shows the token: %s', err.message);
% Bounded: outside the frame is refused; an unknown channel is not found; no creating.
v = CloudVolume(url, 'secrets', secrets);
cleanup = onCleanup(@() delete(v));
expect_error(@() v.cutout([0 0 0], [99 19 1]), 'cloudvolume:outOfBounds');
expect_error(@() CloudVolume([ctx.boss, '/nope'], 'secrets', secrets), 'cloudvolume:notFound', 'nope');
info = CloudVolume.create_new_info(1, 'image', 'uint8', 'raw', [4 4 40], [0 0 0], [64 64 64], [64 64 64]);
expect_error(@() CloudVolume([ctx.boss, '/new'], 'secrets', secrets, 'info', info), 'cloudvolume:unsupported');
expect_error(@() CloudVolume(url, 'secrets', struct('token', {1, 2})), 'cloudvolume:invalidArgument', 'secrets');
end

% =========================================================================================
% Meshes and skeletons against the mesh fixture (tests/reference/make_meshes.py: layers and
% what cloud-volume 12.15.2 returned from them, as .npy files; tests/meshes.rs reads it too).
% cloud-volume's faces and edges are 0-based; the binding's are 1-based rows, so they are
% compared after adding 1. Vertices and attributes are compared bit for bit.

% A .npy file (format 1.0 to 3.0, little-endian or byte-sized elements) as a MATLAB array: a
% column for a 1-D array, rows x columns for a 2-D one, C or Fortran order.
function A = read_npy(path)
b = read_file_bytes(path);
check(numel(b) >= 10 && isequal(double(b(1:6)).', [147 double('NUMPY')]), '%s: not an .npy file', path);
if b(7) == 1
  hlen = double(b(9)) + 256 * double(b(10));
  start = 11;
else
  hlen = double(b(9)) + 256 * double(b(10)) + 65536 * double(b(11)) + 16777216 * double(b(12));
  start = 13;
end
header = char(b(start:start + hlen - 1).');
descr = regexp(header, '''descr'':\s*''([<>|=])(\w+)''', 'tokens', 'once');
shp = regexp(header, '''shape'':\s*\(([^)]*)\)', 'tokens', 'once');
check(~isempty(descr) && ~isempty(shp), '%s: cannot read the header %s', path, header);
check(~strcmp(descr{1}, '>'), '%s: big-endian data', path);
fortran = ~isempty(regexp(header, '''fortran_order'':\s*True', 'once'));
classes = struct('f4', 'single', 'f8', 'double', 'u1', 'uint8', 'i1', 'int8', 'u2', 'uint16', 'i2', 'int16', ...
                 'u4', 'uint32', 'i4', 'int32', 'u8', 'uint64', 'i8', 'int64', 'b1', 'uint8');
check(isfield(classes, descr{2}), '%s: dtype %s', path, descr{2});
dims = str2double(strsplit(shp{1}, ','));
dims = dims(~isnan(dims));
data = b(start + hlen:end);
if isempty(data)
  data = zeros(0, 1, classes.(descr{2}));
else
  data = typecast(data, classes.(descr{2}));
end
data = data(:);
check(numel(data) == prod(dims), '%s: %d elements for the shape (%s)', path, numel(data), shp{1});
switch numel(dims)
  case 0
    A = data;
  case 1
    A = reshape(data, dims, 1);
  otherwise
    if fortran
      A = reshape(data, dims);
    else
      A = permute(reshape(data, fliplr(dims)), numel(dims):-1:1);
    end
end
end

% A decimal id as uint64 (exact beyond 2^53, where jsondecode's doubles are not).
function v = parse_u64(s)
s = strtrim(s);
check(~isempty(s) && all(s >= '0' & s <= '9'), 'not an id: "%s"', s);
v = uint64(0);
for ch = s
  v = v * uint64(10) + uint64(ch - '0');
end
end

% The segment ids of a recorded call, exactly, from its Python text ("vol.mesh.get([3, 4, 5])").
function ids = read_ids(r)
tok = regexp(r.python, '(?:get|exists)\(\[?([0-9][0-9, ]*)', 'tokens', 'once');
check(~isempty(tok), 'no ids in %s', r.python);
parts = strsplit(tok{1}, ',');
parts = parts(~cellfun(@(p) isempty(strtrim(p)), parts));
ids = zeros(1, numel(parts), 'uint64');
for k = 1:numel(parts)
  ids(k) = parse_u64(parts{k});
end
end

function v = mesh_vol(ctx, vols, layer)
if isKey(vols, layer)
  v = vols(layer);
else
  v = CloudVolume(['file://', fullfile(ctx.meshes, strrep(layer, '/', filesep))]);
  vols(layer) = v;
end
end

function compare_mesh(ctx, m, it, what)
check(isstruct(m) && isequal(sort(fieldnames(m)), {'faces'; 'vertices'}), '%s: not a mesh struct', what);
V = read_npy(fullfile(ctx.meshes, it.vertices));
F = read_npy(fullfile(ctx.meshes, it.faces));
check_same(m.vertices, V, [what, ': vertices']);
check(size(m.vertices, 1) == it.vertex_count && size(m.faces, 1) == it.face_count, '%s: counts', what);
check(isa(m.faces, 'double') && isequal(size(m.faces), size(F)) && isequal(m.faces, double(F) + 1), ...
      '%s: faces differ from cloud-volume''s (plus 1)', what);
end

function tf = is_empty_mesh(m)
tf = isequal(size(m.vertices), [0 3]) && isequal(size(m.faces), [0 3]);
end

function [opts, fuse, skip] = mesh_read_options(kw)
opts = {};
fuse = true;
skip = isfield(kw, 'concat');   % cloud-volume's fragment lists: nothing here returns them
if isfield(kw, 'lod')
  opts = [opts, {'lod', kw.lod}];
end
if isfield(kw, 'remove_duplicate_vertices')
  opts = [opts, {'weld', logical(kw.remove_duplicate_vertices)}];
end
if isfield(kw, 'chunk_size')
  opts = [opts, {'chunk_size', kw.chunk_size(:).'}];
end
if isfield(kw, 'fuse')
  fuse = logical(kw.fuse);
end
end

% One recorded call through the binding; returns its kind (for the counts).
function kind = check_recorded_read(ctx, vols, r)
v = mesh_vol(ctx, vols, r.layer);
ids = read_ids(r);
what = sprintf('%s: %s', r.layer, r.python);
bad = isfield(r, 'bad') && isequal(r.bad, true);
missing = sprintf('%d', ctx.mesh_manifest.missing_id);
switch r.call
  case 'mesh.get'
    [opts, fuse, skip] = mesh_read_options(r.kwargs);
    if skip
      kind = 'skipped (concat=False)';
      return;
    end
    if isfield(r, 'error')
      e = r.error;
      % Each error both fused (vol.mesh) and per id (vol.meshes, as tests/meshes.rs reads
      % multi-resolution layers).
      if strcmp(e.type, 'AttributeError')
        % cloud-volume's unsharded lod=-1 crashes; here it is the coarsest lod.
        got = v.mesh(ids, opts{:});
        coarsest = v.mesh(ids, 'lod', v.meshLods(ids(1)) - 1);
        check(~is_empty_mesh(coarsest) && isequal(got, coarsest), '%s: lod -1 is the coarsest', what);
        M = v.meshes(ids, opts{:});
        check(isscalar(M) && M.id == ids && isequal(rmfield(M, 'id'), coarsest), '%s: vol.meshes lod -1', what);
        kind = 'cloud-volume crashed, read here';
      elseif ~isempty(strfind(e.message, 'need at least one array'))
        check(is_empty_mesh(v.mesh(ids, opts{:})), '%s: an empty fragment list is an empty mesh', what);
        M = v.meshes(ids, opts{:});
        check(isscalar(M) && M.id == ids && is_empty_mesh(M), '%s: vol.meshes: an empty mesh', what);
        kind = 'cloud-volume crashed, read here';
      elseif bad
        err = expect_error_any(@() v.mesh(ids, opts{:}), {'cloudvolume:decode', 'cloudvolume:notFound'});
        check(~isempty(err.message), '%s: no message', what);
        err2 = expect_error_any(@() v.meshes(ids, opts{:}), {err.identifier});
        check(strcmp(err2.message, err.message), '%s: vol.meshes says "%s", vol.mesh "%s"', what, err2.message, ...
              err.message);
        kind = 'errors';
      elseif strcmp(e.type, 'MeshDecodeError')
        expect_error(@() v.mesh(ids, opts{:}), 'cloudvolume:invalidArgument', 'lod');
        expect_error(@() v.meshes(ids, opts{:}), 'cloudvolume:invalidArgument', 'lod');
        kind = 'errors';
      else
        expect_error(@() v.mesh(ids, opts{:}), 'cloudvolume:notFound', missing);
        expect_error(@() v.meshes(ids, opts{:}), 'cloudvolume:notFound', missing);
        kind = 'errors';
      end
      return;
    end
    out = r.outputs;
    items = as_cell(out.items);
    if bad && isempty(items)
      % A lod past the end of a short data file: cloud-volume returns nothing, silently.
      expect_error(@() v.mesh(ids, opts{:}), 'cloudvolume:decode', 'past the end');
      expect_error(@() v.meshes(ids, opts{:}), 'cloudvolume:decode', 'past the end');
      kind = 'cloud-volume silent, refused here';
      return;
    end
    if strcmp(out.result_type, 'Mesh')
      check(fuse, '%s: a fused result', what);
      compare_mesh(ctx, v.mesh(ids, opts{:}), items{1}, what);
    else
      % One mesh per id (vol.meshes: cv_mesh_get_each): legacy fuse=False (never welded) or
      % multi-resolution; each id also read alone through vol.mesh.
      if ~fuse
        opts = [opts, {'weld', false}];
      end
      M = v.meshes(ids, opts{:});
      check(isequal(size(M), [1 numel(ids)]) && isequal(sort(fieldnames(M)), {'faces'; 'id'; 'vertices'}) && ...
            isa([M.id], 'uint64') && isequal([M.id], ids), '%s: vol.meshes gave %d meshes', what, numel(M));
      for k = 1:numel(ids)
        m = rmfield(M(k), 'id');
        check(isequal(v.mesh(ids(k), opts{:}), m), '%s [%d]: vol.mesh differs from vol.meshes', what, ids(k));
        it = [];
        for j = 1:numel(items)
          if item_segid(items{j}, ids) == ids(k)
            it = items{j};
          end
        end
        if isempty(it)
          % cloud-volume leaves out an id whose lod has no fragment data.
          check(is_empty_mesh(m), '%s [%d]: an empty mesh', what, ids(k));
        else
          compare_mesh(ctx, m, it, sprintf('%s [%d]', what, ids(k)));
        end
      end
    end
    if isempty(strfind(r.layer, 'multilod'))
      kind = 'legacy reads';
    else
      kind = 'multi-resolution reads';
    end
  case 'mesh.exists'
    val = r.outputs.value;
    for k = 1:numel(ids)
      if iscell(val)
        there = ~isempty(val{k});
      else
        f = matlab.lang.makeValidName(sprintf('%d', ids(k)));
        there = isfield(val, f) && ~isempty(val.(f));
      end
      ok = true;
      try
        n = v.meshLods(ids(k));
        check(n >= 1, '%s: %d lods', what, n);
      catch err
        check(strcmp(err.identifier, 'cloudvolume:notFound'), '%s: %s', what, err.message);
        ok = false;
      end
      % cloud-volume's unsharded multi-resolution exists() looks in the working directory.
      if there || isempty(strfind(r.layer, 'multilod')) || strcmp(r.layer, 'multilod_sharded')
        check(ok == there, '%s %d: exists %d, cloud-volume %d', what, ids(k), ok, there);
      end
    end
    kind = 'exists';
  case 'skeleton.get'
    if isfield(r, 'error')
      if strcmp(r.error.type, 'KeyError')
        % cloud-volume requires a transform; here the identity (a short attribute is refused):
        % the vertices and edges as cloud-volume read them from the same file in the layer
        % without an info (whose default transform is the identity).
        try
          s = v.skeleton(ids(1));
        catch err
          check(strcmp(err.identifier, 'cloudvolume:decode') && ~isempty(strfind(err.message, 'ends inside')), ...
                '%s: %s', what, err.message);
          s = [];
        end
        if ~isempty(s)
          twin = recorded_read(ctx, strrep(r.layer, 'notransform', 'noinfo'), r.python);
          check(~isempty(twin) && isfield(twin, 'outputs'), '%s: no recorded read of the same file', what);
          it = as_cell(twin.outputs.items);
          check_same(s.vertices, read_npy(fullfile(ctx.meshes, it{1}.vertices)), [what, ': vertices (identity)']);
          check(isequal(s.edges, double(read_npy(fullfile(ctx.meshes, it{1}.edges))) + 1), '%s: edges', what);
          S = v.skeletons(ids(1));
          check(isequal(rmfield(S, 'id'), s), '%s: vol.skeletons differs from vol.skeleton', what);
        end
        kind = 'cloud-volume KeyError, read here';
      elseif bad
        expect_error(@() v.skeleton(ids(1)), 'cloudvolume:decode');
        expect_error(@() v.skeletons(ids), 'cloudvolume:decode');
        kind = 'errors';
      else
        expect_error(@() v.skeleton(ids(1)), 'cloudvolume:notFound', missing);
        expect_error(@() v.skeletons(ids), 'cloudvolume:notFound', missing);
        kind = 'errors';
      end
      return;
    end
    items = as_cell(r.outputs.items);
    short = false;
    for j = 1:numel(items)
      a = items{j}.attributes;
      f = fieldnames(a);
      for q = 1:numel(f)
        short = short || a.(f{q}).shape(1) ~= items{j}.vertex_count;
      end
    end
    if (bad && isequal(ids, uint64(101))) || short
      % An edge past the vertices, or an attribute shorter than the vertices: cloud-volume
      % hands them on; here they are refused.
      err = expect_error(@() v.skeleton(ids(1)), 'cloudvolume:decode');
      check(~isempty(strfind(err.message, 'vertex 75 of 50')) || ~isempty(strfind(err.message, 'ends inside')), ...
            '%s: %s', what, err.message);
      expect_error(@() v.skeletons(ids), 'cloudvolume:decode', err.message);
      kind = 'cloud-volume silent, refused here';
      return;
    end
    % All ids at once (vol.skeletons: cv_skeleton_get_each, in the order given), and each alone.
    S = v.skeletons(ids);
    check(isequal(size(S), [1 numel(ids)]) && isa([S.id], 'uint64') && isequal([S.id], ids) && ...
          numel(items) == numel(ids), '%s: vol.skeletons gave %d skeletons for %d items', what, numel(S), numel(items));
    for j = 1:numel(items)
      it = items{j};
      k = find(ids == item_segid(it, ids), 1);
      check(~isempty(k), '%s: item %d is none of the ids', what, it.segid);
      s = rmfield(S(k), 'id');
      compare_skeleton(ctx, s, it, sprintf('%s [%d]', what, ids(k)));
      check(isequal(v.skeleton(ids(k)), s), '%s [%d]: vol.skeleton differs from vol.skeletons', what, ids(k));
    end
    kind = 'skeleton reads';
  otherwise
    error('test:fail', 'unknown call %s', r.call);
end
end

% The exact segment id of a recorded item of a call on `ids`: the last number of its file name
% when that is its segid (make_meshes.py names per-id meshes <call>.<segid>.vertices.npy), else
% the one of ids its segid stands for (jsondecode's segid is a double, inexact past 2^53).
function id = item_segid(it, ids)
check(~isempty(it.segid), 'no segid in %s', it.vertices);
tok = regexp(it.vertices, '\.([0-9]+)\.vertices\.npy$', 'tokens', 'once');
if ~isempty(tok) && double(parse_u64(tok{1})) == it.segid
  id = parse_u64(tok{1});
  return;
end
k = find(double(ids) == it.segid);
check(numel(k) == 1, 'item %d stands for %d of the ids %s', it.segid, numel(k), mat2str(double(ids)));
id = ids(k);
end

% The recorded read of `layer` whose call is `python`, or [].
function r = recorded_read(ctx, layer, python)
r = [];
reads = as_cell(ctx.mesh_manifest.reads);
for i = 1:numel(reads)
  if strcmp(reads{i}.layer, layer) && strcmp(reads{i}.python, python)
    r = reads{i};
    return;
  end
end
end

function compare_skeleton(ctx, s, it, what)
check(isstruct(s) && isequal(sort(fieldnames(s)), {'attributes'; 'edges'; 'vertices'}), '%s: not a skeleton', what);
check_same(s.vertices, read_npy(fullfile(ctx.meshes, it.vertices)), [what, ': vertices']);
E = read_npy(fullfile(ctx.meshes, it.edges));
check(isa(s.edges, 'double') && isequal(size(s.edges), size(E)) && isequal(s.edges, double(E) + 1), ...
      '%s: edges differ from cloud-volume''s (plus 1)', what);
want = fieldnames(it.attributes);
got = fieldnames(s.attributes);
check(isequal(sort(got), sort(want)), '%s: attributes %s, cloud-volume %s', what, strjoin(got.', ' '), ...
      strjoin(want.', ' '));
for q = 1:numel(want)
  a = it.attributes.(want{q});
  A = read_npy(fullfile(ctx.meshes, a.file));
  check(strcmp(class(A), dtype_class(a.dtype)), '%s: %s is %s', what, want{q}, a.dtype);
  check_same(s.attributes.(want{q}), A, sprintf('%s: attribute %s', what, want{q}));
end
end

function err = expect_error_any(fn, ids)
try
  fn();
catch err
  check(any(strcmp(err.identifier, ids)), 'expected one of %s, got %s: %s', strjoin(ids, ', '), err.identifier, ...
        err.message);
  return;
end
error('test:fail', 'expected one of %s, but there was none', strjoin(ids, ', '));
end

% Every recorded call on the layers `pick` accepts; returns the counts per kind.
function counts = run_recorded(ctx, pick)
vols = containers.Map();
cleanup = onCleanup(@() delete_all(vols));
counts = struct();
reads = as_cell(ctx.mesh_manifest.reads);
for i = 1:numel(reads)
  r = reads{i};
  if ~pick(r)
    continue;
  end
  kind = matlab.lang.makeValidName(check_recorded_read(ctx, vols, r));
  if ~isfield(counts, kind)
    counts.(kind) = 0;
  end
  counts.(kind) = counts.(kind) + 1;
end
end

function n = count_of(counts, kind)
n = 0;
f = matlab.lang.makeValidName(kind);
if isfield(counts, f)
  n = counts.(f);
end
end

function t_mesh_legacy(ctx)
c = run_recorded(ctx, @(r) any(strcmp(r.layer, {'legacy', 'legacy_transform'})));
check(count_of(c, 'legacy reads') >= 130 && count_of(c, 'exists') == 2 && count_of(c, 'errors') == 2, ...
      'legacy: %d reads, %d exists, %d errors', count_of(c, 'legacy reads'), count_of(c, 'exists'), count_of(c, 'errors'));
end

function t_mesh_multilod(ctx)
c = run_recorded(ctx, @(r) strncmp(r.layer, 'multilod', 8));
check(count_of(c, 'multi-resolution reads') >= 280 && count_of(c, 'errors') >= 8, ...
      'multilod: %d reads, %d errors', count_of(c, 'multi-resolution reads'), count_of(c, 'errors'));
% Every lod of every object of the three layers was read (lods 0, 1, 2 per id).
lods = zeros(1, 3);
reads = as_cell(ctx.mesh_manifest.reads);
for i = 1:numel(reads)
  r = reads{i};
  if strncmp(r.layer, 'multilod', 8) && strcmp(r.call, 'mesh.get') && ~isfield(r, 'error') && ...
     ~isfield(r.kwargs, 'concat') && isnumeric(r.segids) && isscalar(r.segids)
    l = 0;
    if isfield(r.kwargs, 'lod')
      l = r.kwargs.lod;
    end
    if l >= 0
      lods(l + 1) = lods(l + 1) + 1;
    end
  end
end
n = numel(ctx.mesh_manifest.ids);
check(all(lods >= 3 * n), 'lods read per layer: %s (of %d objects)', mat2str(lods / 3), n);
v = CloudVolume(['file://', fullfile(ctx.meshes, 'multilod_sharded')]);
check(v.meshLods(3) == 3, 'three lods');
i = v.meshInfo();
check(strcmp(i.x_type, 'neuroglancer_multilod_draco') && i.vertex_quantization_bits == 16, 'meshInfo');
delete(v);
end

function t_skeleton_reads(ctx)
c = run_recorded(ctx, @(r) strcmp(r.call, 'skeleton.get') && ~(isfield(r, 'bad') && isequal(r.bad, true)));
check(count_of(c, 'skeleton reads') >= 34 && count_of(c, 'errors') == 2 && ...
      count_of(c, 'skeleton reads') + count_of(c, 'cloud-volume silent, refused here') == 36 && ...
      count_of(c, 'cloud-volume KeyError, read here') == 4, 'skeletons: %d reads, %d refused, %d errors', ...
      count_of(c, 'skeleton reads'), count_of(c, 'cloud-volume silent, refused here'), count_of(c, 'errors'));
for layer = {'skeletons', 'skeletons_sharded'}
  v = CloudVolume(['file://', fullfile(ctx.meshes, layer{1})]);
  s = v.skeleton(1);
  a = s.attributes;
  check(isequal(fieldnames(a), {'radius'; 'vertex_types'; 'compartment'; 'direction'}), '%s: attribute order', layer{1});
  n = size(s.vertices, 1);
  check(isa(a.radius, 'single') && isequal(size(a.radius), [n 1]) && isa(a.vertex_types, 'uint8') && ...
        isa(a.compartment, 'int16') && isa(a.direction, 'single') && isequal(size(a.direction), [n 3]), ...
        '%s: attribute classes and shapes', layer{1});
  i = v.skeletonInfo();
  check(numel(i.transform) == 12 && numel(i.vertex_attributes) == 4, '%s: skeletonInfo', layer{1});
  delete(v);
end
end

function t_mesh_errors(ctx)
c = run_recorded(ctx, @(r) isfield(r, 'bad') && isequal(r.bad, true));
check(count_of(c, 'errors') >= 10 && count_of(c, 'cloud-volume silent, refused here') >= 3, ...
      'bad inputs: %d errors, %d refused', count_of(c, 'errors'), count_of(c, 'cloud-volume silent, refused here'));
nf = 'cloudvolume:notFound';
L = CloudVolume(['file://', fullfile(ctx.meshes, 'legacy')]);
M = CloudVolume(['file://', fullfile(ctx.meshes, 'multilod')]);
S = CloudVolume(['file://', fullfile(ctx.meshes, 'skeletons_sharded')]);
cleanup = onCleanup(@() cellfun(@delete, {L, M, S}));
% A missing id: cloudvolume:notFound naming it (uint64 ids beyond 2^53 exactly).
expect_error(@() L.mesh(999999), nf, '999999');
expect_error(@() L.mesh([3 4 999999]), nf, '999999');
expect_error(@() M.mesh([3 999999]), nf, '999999');
expect_error(@() M.mesh(uint64(18446744073709551615)), nf, '18446744073709551615');
expect_error(@() L.meshLods(999999), nf, '999999');
expect_error(@() L.saveMesh(999999, fullfile(ctx.tmp, 'missing.obj')), nf, '999999');
expect_error(@() S.skeleton(999999), nf, '999999');
expect_error(@() S.saveSkeleton(999999, fullfile(ctx.tmp, 'missing.swc')), nf, '999999');
check(~exist(fullfile(ctx.tmp, 'missing.obj'), 'file') && ~exist(fullfile(ctx.tmp, 'missing.swc'), 'file'), ...
      'nothing saved for a missing id');
% allow_missing leaves them out.
check(isequal(L.mesh([3 999999], 'allow_missing', true), L.mesh(3)), 'legacy allow_missing');
check(isequal(M.mesh([999999 3], 'allow_missing', true, 'lod', 1), M.mesh(3, 'lod', 1)), 'multilod allow_missing');
check(is_empty_mesh(M.mesh(999999, 'allow_missing', true)), 'only missing ids: an empty mesh');
% A lod out of range: cloudvolume:invalidArgument.
expect_error(@() M.mesh(3, 'lod', 3), 'cloudvolume:invalidArgument', 'lod 3');
expect_error(@() M.mesh([3 4], 'lod', 7), 'cloudvolume:invalidArgument', 'lod 7');
expect_error(@() M.saveMesh(3, fullfile(ctx.tmp, 'lod.obj'), 'lod', 3), 'cloudvolume:invalidArgument', 'lod 3');
% The bad/ fixture: cloudvolume:decode naming the file.
bl = CloudVolume(['file://', fullfile(ctx.meshes, 'bad', 'legacy')]);
bm = CloudVolume(['file://', fullfile(ctx.meshes, 'bad', 'multilod')]);
bs = CloudVolume(['file://', fullfile(ctx.meshes, 'bad', 'skeletons')]);
cleanup2 = onCleanup(@() cellfun(@delete, {bl, bm, bs}));
dec = 'cloudvolume:decode';
expect_error(@() bl.mesh(3), dec, '203 vertices');
expect_error(@() bl.mesh(1), nf, '1:0:128-160_64-96_24-40');
expect_error(@() bm.mesh(1), dec, 'past the end');
expect_error(@() bm.mesh(3), dec, 'Draco');
expect_error(@() bm.mesh(4, 'lod', 1), dec, '4.index');
expect_error(@() bm.mesh(5), dec, '5.index');
expect_error(@() bm.meshLods(5), dec, '5.index');
expect_error(@() bs.skeleton(101), dec, 'vertex 75 of 50');
expect_error(@() bs.skeleton(102), dec, 'edges');
expect_error(@() bs.skeleton(104), dec, 'compartment');
expect_error(@() bs.saveSkeleton(102, fullfile(ctx.tmp, 'bad.swc')), dec, '102');
end

% Merged reads: [a b c] as one mesh, concatenated in ascending id order.
function t_mesh_merged(ctx)
reads = as_cell(ctx.mesh_manifest.reads);
n = 0;
vols = containers.Map();
cleanup = onCleanup(@() delete_all(vols));
for i = 1:numel(reads)
  r = reads{i};
  if ~strcmp(r.call, 'mesh.get') || isfield(r, 'error') || isscalar(r.segids) || isfield(r, 'bad')
    continue;
  end
  ids = read_ids(r);
  v = mesh_vol(ctx, vols, r.layer);
  [opts, fuse] = mesh_read_options(r.kwargs);
  items = as_cell(r.outputs.items);
  what = sprintf('%s: %s merged', r.layer, r.python);
  if strcmp(r.outputs.result_type, 'Mesh')
    compare_mesh(ctx, v.mesh(ids, opts{:}), items{1}, what);      % cloud-volume fused them
    compare_mesh(ctx, v.mesh(fliplr(ids), opts{:}), items{1}, [what, ' (ids reversed)']);
  else
    % Per-id results concatenated in ascending id order, faces shifted past earlier vertices.
    if ~fuse
      opts = [opts, {'weld', false}];
    end
    segids = cellfun(@(it) it.segid, items);
    [~, order] = sort(segids);
    V = zeros(0, 3, 'single');
    F = zeros(0, 3);
    for j = order(:).'
      F = [F; double(read_npy(fullfile(ctx.meshes, items{j}.faces))) + 1 + size(V, 1)]; %#ok<AGROW>
      V = [V; read_npy(fullfile(ctx.meshes, items{j}.vertices))]; %#ok<AGROW>
    end
    m = v.mesh(fliplr(ids), opts{:});
    check_same(m.vertices, V, [what, ': vertices']);
    check(isequal(m.faces, F), '%s: faces', what);
  end
  n = n + 1;
end
check(n >= 9, '%d merged reads', n);
end

% saveMesh: cloud-volume's to_obj()/to_ply() bytes; saveSkeleton: osteoid's SWC (the same
% nodes and links, the header but its date); binary STL's size.
function t_mesh_save(ctx)
texts = as_cell(ctx.mesh_manifest.texts);
n = 0;
swc_rows = 0;
for i = 1:numel(texts)
  t = texts{i};
  v = CloudVolume(['file://', fullfile(ctx.meshes, t.layer)]);
  want = read_file_bytes(fullfile(ctx.meshes, t.file));
  out = fullfile(ctx.tmp, sprintf('saved.%d.%s', i, t.format));
  if strcmp(t.format, 'swc')
    v.saveSkeleton(t.segid, out);
    [rows, links, head] = swc_forest(char(read_file_bytes(out).'));
    [wrows, wlinks, whead] = swc_forest(char(want.'));
    swc_rows = swc_rows + numel(rows);
    check(isequal(rows, wrows) && isequal(links, wlinks), '%s %d: SWC nodes or links differ from osteoid''s', ...
          t.layer, t.segid);
    % The header names its writer; the scale (the transform's diagonal) must agree.
    scale = @(h) h(strncmp(h, '# SCALE', 7));
    check(isequal(scale(head), scale(whead)) && numel(scale(head)) == 1, '%s %d: SWC scale %s, osteoid''s %s', ...
          t.layer, t.segid, strjoin(scale(head), ''), strjoin(scale(whead), ''));
  else
    v.saveMesh(t.segid, out);
    got = read_file_bytes(out);
    check(isequal(got, want), '%s %d %s: %d bytes, cloud-volume''s %d, differ', t.layer, t.segid, t.format, ...
          numel(got), numel(want));
    if strcmp(t.layer, 'legacy')
      m = v.mesh(t.segid);
      stl = fullfile(ctx.tmp, sprintf('saved.%d.stl', i));
      v.saveMesh(t.segid, stl);
      check_stl(read_file_bytes(stl), m, sprintf('%s %d', t.layer, t.segid));
    end
  end
  delete(v);
  n = n + 1;
end
check(n == 9 && swc_rows > 100, '%d texts, %d SWC rows', n, swc_rows);
% A merged multi-resolution mesh, saved with vol.mesh's options.
v = CloudVolume(['file://', fullfile(ctx.meshes, 'multilod_sharded')]);
out = fullfile(ctx.tmp, 'merged.obj');
v.saveMesh([4 3], out, 'lod', 1);
m = v.mesh([3 4], 'lod', 1);
txt = char(read_file_bytes(out).');
check(numel(regexp(txt, '(?m)^v ')) == size(m.vertices, 1) && numel(regexp(txt, '(?m)^f ')) == size(m.faces, 1), ...
      'merged OBJ: one line per vertex and face');
out = fullfile(ctx.tmp, 'merged.stl');
v.saveMesh(uint64([3 4]), out, 'lod', 1);
check_stl(read_file_bytes(out), m, 'merged STL');
delete(v);
end

% A binary STL file: 80 header bytes, the triangle count, then per triangle a normal and its
% three corners (float32) and 2 attribute bytes; the corners are the mesh's vertices bit for
% bit, face by face, and each normal is a unit vector (or zero for a degenerate face).
function check_stl(b, m, what)
nt = size(m.faces, 1);
check(numel(b) == 84 + 50 * nt && double(typecast(b(81:84), 'uint32')) == nt, '%s: STL of %d bytes for %d faces', ...
      what, numel(b), nt);
if nt == 0
  return;
end
body = reshape(b(85:end), 50, nt);
corners = reshape(typecast(reshape(body(13:48, :), [], 1), 'single'), 9, nt);
V = m.vertices.';
check_same(corners, reshape(V(:, m.faces.'), 9, nt), [what, ': STL corners']);
normals = double(reshape(typecast(reshape(body(1:12, :), [], 1), 'single'), 3, nt));
len = sqrt(sum(normals .^ 2, 1));
check(all(abs(len - 1) < 1e-5 | len == 0) && any(len > 0), '%s: STL normals are not unit vectors', what);
end

% An SWC text as sorted node rows (type x y z radius), sorted undirected links between node
% positions, and the comment lines but the date.
function [rows, links, head] = swc_forest(txt)
lines = strsplit(txt, char(10));
head = {};
body = {};
for k = 1:numel(lines)
  l = strtrim(lines{k});
  if isempty(l)
    continue;
  elseif l(1) == '#'
    if isempty(strfind(l, 'VERSION_DATE'))
      head{end + 1} = l; %#ok<AGROW>
    end
  else
    body{end + 1} = strsplit(l, ' '); %#ok<AGROW>
  end
end
ids = cellfun(@(b) b{1}, body, 'UniformOutput', false);
rows = sort(cellfun(@(b) strjoin(b(2:6), ' '), body, 'UniformOutput', false));
links = {};
for k = 1:numel(body)
  p = find(strcmp(ids, body{k}{7}), 1);
  if ~isempty(p)
    a = strjoin(body{k}(3:5), ' ');
    b = strjoin(body{p}(3:5), ' ');
    if strcmp(a, b) || issorted({a, b})
      links{end + 1} = [a, ' / ', b]; %#ok<AGROW>
    else
      links{end + 1} = [b, ' / ', a]; %#ok<AGROW>
    end
  end
end
links = sort(links);
end

% A temporary copy of a fixture layer's info files (no data): ctx.tmp/<name>/<layer>.
function url = mesh_copy(ctx, name, layer)
src = fullfile(ctx.meshes, layer);
dst = fullfile(ctx.tmp, name, layer);
for f = {'info', fullfile('mesh', 'info'), fullfile('skeletons', 'info')}
  if exist(fullfile(src, f{1}), 'file')
    d = fileparts(fullfile(dst, f{1}));
    if ~exist(d, 'dir')
      mkdir(d);
    end
    copyfile(fullfile(src, f{1}), fullfile(dst, f{1}));
  end
end
url = ['file://', dst];
end

% putMesh and putSkeleton into temporary copies, read back here (and by cloud-volume when the
% venv is there).
function t_mesh_writes(ctx)
src = CloudVolume(['file://', fullfile(ctx.meshes, 'legacy')]);
dst = CloudVolume(mesh_copy(ctx, 'writes', 'legacy'));
ssrc = CloudVolume(['file://', fullfile(ctx.meshes, 'skeletons')]);
sdst = CloudVolume(mesh_copy(ctx, 'writes', 'skeletons'));
cleanup = onCleanup(@() cellfun(@delete, {src, dst, ssrc, sdst}));
ids = [uint64(1), uint64(2), uint64(4294967297), parse_u64('9223372036854775819')];
for id = ids
  m = src.mesh(id);
  dst.putMesh(id, m);
  check(isequal(dst.mesh(id), m), 'mesh %d read back', id);
  check(isequal(dst.mesh(id, 'weld', false), m), 'mesh %d read back unwelded (one fragment)', id);
end
% vertices and faces given apart (double vertices are stored as single); a rewrite replaces.
tri = struct('vertices', single([0 0 0; 1 0 0; 0 1 0]), 'faces', [1 2 3]);
dst.putMesh(2, double(tri.vertices), uint32(tri.faces));
check(isequal(dst.mesh(2, 'weld', false), tri), 'a rewritten mesh reads back');
check(dst.meshLods(2) == 1, 'a legacy mesh has one lod');
expect_error(@() dst.putMesh(2, tri.vertices, [1 2 4]), 'cloudvolume:invalidArgument', 'vertex 4 of 3');
expect_error(@() dst.putMesh(2, tri.vertices, [0 1 2]), 'cloudvolume:invalidArgument', '1-based');
check(isequal(dst.mesh(2, 'weld', false), tri), 'a refused write leaves the mesh');
dst.putMesh(5, zeros(0, 3), zeros(0, 3));
check(is_empty_mesh(dst.mesh(5)), 'an empty mesh reads back');
ml = CloudVolume(mesh_copy(ctx, 'writes', 'multilod'));
expect_error(@() ml.putMesh(5, tri), 'cloudvolume:unsupported', 'multilod');
delete(ml);
% Skeletons with their four attributes: physical vertices mapped back through the transform.
for id = 1:3
  s = ssrc.skeleton(id);
  sdst.putSkeleton(id, s, 'space', 'physical');
  b = sdst.skeleton(id);
  check_same(b.vertices, s.vertices, sprintf('skeleton %d vertices', id));
  check(isequal(b.edges, s.edges), 'skeleton %d edges', id);
  f = fieldnames(s.attributes);
  check(isequal(fieldnames(b.attributes), f), 'skeleton %d attributes', id);
  for q = 1:numel(f)
    check_same(b.attributes.(f{q}), s.attributes.(f{q}), sprintf('skeleton %d %s', id, f{q}));
  end
end
% Stored space (cloud-volume's upload: written as given); attributes converted to their class.
s = ssrc.skeleton(4);
n = size(s.vertices, 1);
raw = struct('vertices', [0 0 0; 1 2 3; 4 5 6.5], 'edges', [1 2; 2 3]);
raw.attributes = struct('radius', [1; 2; 3], 'vertex_types', [0 1 2], 'compartment', int16([-1; 0; 1]), ...
                        'direction', magic(3));
sdst.putSkeleton(9, raw);
b = sdst.skeleton(9);
check_same(b.vertices, single(raw.vertices .* [8 8 40] + [512 256 320]), 'stored vertices made physical');
check(isequal(b.edges, raw.edges), 'edges of a stored-space skeleton');
check_same(b.attributes.radius, single([1; 2; 3]), 'radius converted to single');
check_same(b.attributes.vertex_types, uint8([0; 1; 2]), 'vertex_types converted to uint8');
check_same(b.attributes.direction, single(magic(3)), 'direction (3 components)');
noattr = struct('vertices', s.vertices, 'edges', s.edges);
sdst.putSkeleton(10, noattr, 'space', 'physical');
b = sdst.skeleton(10);
check_same(b.vertices, s.vertices, 'a skeleton without attributes');
check(size(b.vertices, 1) == n, 'vertex count');
bad = raw;
bad.attributes = rmfield(raw.attributes, 'compartment');
expect_error(@() sdst.putSkeleton(11, bad), 'cloudvolume:invalidArgument', 'compartment');
bad.attributes = raw.attributes;
bad.attributes.colour = [1; 2; 3];
expect_error(@() sdst.putSkeleton(11, bad), 'cloudvolume:invalidArgument', 'colour');
bad.attributes = raw.attributes;
bad.attributes.direction = ones(3, 2);
expect_error(@() sdst.putSkeleton(11, bad), 'cloudvolume:invalidArgument', 'direction');
bad = raw;
bad.edges = [1 2; 2 4];
expect_error(@() sdst.putSkeleton(11, bad), 'cloudvolume:invalidArgument', 'vertex 4 of 3');
expect_error(@() sdst.skeleton(11), 'cloudvolume:notFound', '11');
sh = CloudVolume(mesh_copy(ctx, 'writes', 'skeletons_sharded'));
expect_error(@() sh.putSkeleton(1, raw), 'cloudvolume:unsupported');
delete(sh);
% cloud-volume reads what was written here.
py = getenv('CV_PYTHON');
if isempty(py)
  py = fullfile(ctx.repo, 'target', 'venv', 'bin', 'python');
end
if exist(py, 'file')
  script = fullfile(ctx.tmp, 'check_writes.py');
  fid = fopen(script, 'w');
  fprintf(fid, '%s\n', 'import sys, numpy as np', 'from cloudvolume import CloudVolume', ...
          'src, dst = sys.argv[1], sys.argv[2]', ...
          'a, b = CloudVolume("file://" + src + "/legacy"), CloudVolume("file://" + dst + "/legacy")', ...
          'for i in (1, 4294967297):', ...
          '    m, n = a.mesh.get(i), b.mesh.get(i)', ...
          '    assert (m.vertices == n.vertices).all() and (m.faces == n.faces).all(), i', ...
          't = b.mesh.get(2, remove_duplicate_vertices=False)', ...
          'assert t.vertices.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0]] and t.faces.tolist() == [[0, 1, 2]]', ...
          'a, b = CloudVolume("file://" + src + "/skeletons"), CloudVolume("file://" + dst + "/skeletons")', ...
          'for i in (1, 2, 3):', ...
          '    s, u = a.skeleton.get(i), b.skeleton.get(i)', ...
          '    assert (s.vertices == u.vertices).all() and (s.edges == u.edges).all(), i', ...
          '    for attr in ("radius", "vertex_types", "compartment", "direction"):', ...
          '        assert (getattr(s, attr) == getattr(u, attr)).all(), (i, attr)', ...
          'print("ok")');
  fclose(fid);
  [status, out] = system(sprintf('"%s" "%s" "%s" "%s" 2>&1', py, script, ctx.meshes, fullfile(ctx.tmp, 'writes')));
  check(status == 0 && ~isempty(strfind(out, 'ok')), 'cloud-volume reading the writes: %s', out);
end
end

% Bad arguments reach neither the library nor a crash: through the class and straight into
% the MEX file.
function t_mesh_bad_arguments(ctx)
v = CloudVolume(['file://', fullfile(ctx.meshes, 'legacy')]);
w = CloudVolume(mesh_copy(ctx, 'badargs', 'skeletons'));
cleanup = onCleanup(@() cellfun(@delete, {v, w}));
ia = 'cloudvolume:invalidArgument';
expect_error(@() v.mesh([]), ia, 'at least one');
expect_error(@() v.mesh(-1), ia, 'non-negative');
expect_error(@() v.mesh(1.5), ia, 'non-negative');
expect_error(@() v.mesh('1'), ia, 'non-negative');
expect_error(@() v.mesh(1, 'lod', 0.5), ia, 'lod');
expect_error(@() v.mesh(1, 'lod', -2), ia, 'lod');
expect_error(@() v.mesh(1, 'weld', 2), ia, 'weld');
expect_error(@() v.mesh(1, 'weld', 'yes'), ia, 'weld');
expect_error(@() v.mesh(1, 'chunk_size', [1 2]), ia, 'chunk_size');
expect_error(@() v.mesh(1, 'chunk_size', [0 2 2]), ia, 'chunk_size');
expect_error(@() v.mesh(1, 'allow_missing', [1 1]), ia, 'allow_missing');
expect_error(@() v.mesh(1, 'levels', 3), ia, 'lod, weld, chunk_size, allow_missing');
expect_error(@() v.mesh(1, 'lod'), ia, 'name-value');
check(isequal(v.mesh(1, 'ChunkSize', [32 32 16], 'AllowMissing', false), v.mesh(1, 'chunk_size', [32 32 16])), ...
      'option names: any case, underscores optional');
expect_error(@() v.meshes([]), ia, 'at least one');
expect_error(@() v.meshes([1 -1]), ia, 'non-negative');
expect_error(@() v.meshes({1, 2}), ia, 'non-negative');
expect_error(@() v.meshes(1, 'fuse', false), ia, 'lod, weld, chunk_size, allow_missing');
expect_error(@() v.meshes(1, 'lod', [0 1]), ia, 'lod');
expect_error(@() v.meshes(1, 'allow_missing', 'yes'), ia, 'allow_missing');
expect_error(@() w.skeletons([]), ia, 'at least one');
expect_error(@() w.skeletons(NaN), ia, 'non-negative');
expect_error(@() w.skeletons(1, 'allow_missing', 2), ia, 'allow_missing');
expect_error(@() w.skeletons(1, 'lod', 1), ia, 'allowmissing');
expect_error(@() w.skeletons(1, 'allow_missing'), ia, 'name-value');
expect_error(@() v.saveMesh(1, fullfile(ctx.tmp, 'x.dae')), ia, '.obj, .ply or .stl');
expect_error(@() v.saveMesh(1, 42), ia, 'path');
expect_error(@() v.saveMesh(1, fullfile(ctx.tmp, 'no', 'such', 'dir', 'x.obj')), 'cloudvolume:io');
expect_error(@() v.meshLods([1 2]), ia, 'one segment id');
expect_error(@() v.skeleton([1 2]), ia, 'one segment id');
expect_error(@() v.putMesh(1, zeros(3, 2), [1 2 3]), ia, 'n x 3');
expect_error(@() v.putMesh(1, {1}, [1 2 3]), ia, 'n x 3');
expect_error(@() v.putMesh(1, eye(3), [1 2 3.5]), ia, 'vertex rows');
expect_error(@() v.putMesh(1, eye(3), [1 2]), ia, 'vertex rows');
expect_error(@() v.putMesh(1, eye(3), [1 2 NaN]), ia, 'vertex rows');
expect_error(@() v.putMesh(1, eye(3)), ia, 'usage');
expect_error(@() w.putSkeleton(1, struct('vertices', eye(3))), ia, 'vertices and edges');
expect_error(@() w.putSkeleton(1, struct('vertices', eye(3), 'edges', [1 2]), 'space', 'voxel'), ia, 'space');
expect_error(@() w.putSkeleton(1, struct('vertices', eye(3), 'edges', [1 2]), 'spaces', 'stored'), ia, 'space');
expect_error(@() w.putSkeleton(1, struct('vertices', eye(3), 'edges', [1 2 3])), ia, 'edges');
% Straight into the MEX file: wrong counts, classes, shapes, handles; never a crash.
cm = @(varargin) CloudVolume.call_mex(varargin{:});
id = v.Id;
sid = w.Id;
expect_error(@() cm('mesh_get', id), ia, 'usage');
expect_error(@() cm('mesh_get', id, 'x', 0, -1, [], 0), ia, 'segment ids');
expect_error(@() cm('mesh_get', id, {1}, 0, -1, [], 0), ia, 'segment ids');
expect_error(@() cm('mesh_get', id, zeros(1, 0), 0, -1, [], 0), ia, 'at least one');
expect_error(@() cm('mesh_get', id, 1, 2^40, -1, [], 0), ia, 'lod');
expect_error(@() cm('mesh_get', id, 1, 0, 7, [], 0), ia, 'weld');
expect_error(@() cm('mesh_get', id, 1, 0, -1, [1 2 3 4], 0), ia, 'chunk_size');
expect_error(@() cm('mesh_get', id, 1, 0, -1, [], 2), ia, 'allow_missing');
expect_error(@() cm('mesh_get', uint64(987654321), 1, 0, -1, [], 0), 'cloudvolume:invalidHandle', '987654321');
expect_error(@() cm('mesh_get', id, 1, 0, -1, [], 0.5), ia, 'allow_missing');
expect_error(@() cm('mesh_get', id, 1, NaN, -1, [], 0), ia, 'lod');
expect_error(@() cm('mesh_get', id, 1, -2, -1, [], 0), ia, 'lod');
expect_error(@() cm('mesh_get', id, sparse(1), 0, -1, [], 0), ia, 'segment ids');
expect_error(@() cm('mesh_get', id, complex(1, 1), 0, -1, [], 0), ia, 'segment ids');
expect_error(@() cm('mesh_get', id, true, 0, -1, [], 0), ia, 'segment ids');
expect_error(@() cm('mesh_get', id, 1, 'x', -1, [], 0), ia, 'lod');
expect_error(@() cm('mesh_get', id, 1, 0, -1, {}, 0), ia, 'chunk_size');
expect_error(@() cm('mesh_get', id, 1, 0, -1, [1.5 2 3], 0), ia, 'chunk_size');
expect_error(@() cm('mesh_get_each', id, zeros(1, 0), 0, -1, [], 0), ia, 'at least one');
expect_error(@() cm('mesh_get_each', id, [1 -2], 0, -1, [], 0), ia, 'non-negative');
expect_error(@() cm('mesh_get_each', id, {1}, 0, -1, [], 0), ia, 'segment ids');
expect_error(@() cm('mesh_get_each', id, 1, 0, 2, [], 0), ia, 'weld');
expect_error(@() cm('mesh_get_each', id, 1, 0, -1, 'abc', 0), ia, 'chunk_size');
expect_error(@() cm('mesh_get_each', id, 1, 0, -1, [], [0 1]), ia, 'allow_missing');
expect_error(@() cm('skeleton_get_each', sid, [], 0), ia, 'at least one');
expect_error(@() cm('skeleton_get_each', sid, 'ab', 0), ia, 'segment ids');
expect_error(@() cm('skeleton_get_each', sid, [1 1.5], 0), ia, 'non-negative');
expect_error(@() cm('skeleton_get_each', sid, 1, 'x'), ia, 'allow_missing');
expect_error(@() cm('skeleton_get_each', sid, 1, 3), ia, 'allow_missing');
expect_error(@() cm('skeleton_put', sid, 1, single(eye(3)), [1 2], cell(1, 4)), ia, 'vertex attribute 1');
expect_error(@() cm('skeleton_put', sid, 1, single(eye(3)), [1 2], {}, 1), ia, 'usage');
expect_error(@() cm('mesh_put', id, 1, single(eye(3)), [1 2 2^40]), ia, 'vertex 1099511627776 of 3');
expect_error(@() cm('mesh_put', id, 1, single(eye(3)), [1 2 Inf]), ia, 'not an integer');
expect_error(@() cm('mesh_put', id, 1, single(eye(3)), {1, 2, 3}), ia, 'faces');
expect_error(@() cm('mesh_put', id, 1, single(eye(3)), int8([1 2 -3])), ia, 'vertex -3 of 3');
expect_error(@() cm('mesh_save', id, 1, 0, -1, [], 0, 5), ia, 'path');
expect_error(@() cm('mesh_lods', id, [1 2]), ia, 'one non-negative');
expect_error(@() cm('mesh_lods', id, -3), ia, 'non-negative');
expect_error(@() cm('mesh_put', id, 1, eye(3), [1 2 3]), ia, 'single');
expect_error(@() cm('mesh_put', id, 1, single(eye(3)), [1 2 9]), ia, 'vertex 9 of 3');
expect_error(@() cm('mesh_put', id, 1, single(eye(3)), [1 2 3 1]), ia, 'm x 3');
expect_error(@() cm('mesh_put', id, 1, single(ones(2, 2, 3)), [1 2 3]), ia, 'n x 3');
expect_error(@() cm('mesh_put', id, 1, complex(single(eye(3))), [1 2 3]), ia, 'n x 3');
expect_error(@() cm('mesh_put', id, 1, single(eye(3)), sparse([1 2 3])), ia, 'faces');
expect_error(@() cm('skeleton_get', id, 'x'), ia, 'segment id');
expect_error(@() cm('skeleton_put', sid, 1, single(eye(3)), [1 2], 5), ia, 'cell');
expect_error(@() cm('skeleton_put', sid, 1, single(eye(3)), [1 2], {single([1; 2; 3])}), ia, '4 vertex attribute');
vals = {single([1; 2; 3]), uint8([1; 2; 3]), int16([1; 2; 3]), single(eye(3))};
bad = vals;
bad{2} = int8([1; 2; 3]);
expect_error(@() cm('skeleton_put', sid, 1, single(eye(3)), [1 2], bad), ia, 'uint8');
bad = vals;
bad{4} = single(ones(3, 2));
expect_error(@() cm('skeleton_put', sid, 1, single(eye(3)), [1 2], bad), ia, '3 x 3');
bad = vals;
bad{1} = single([1; 2]);
expect_error(@() cm('skeleton_put', sid, 1, single(eye(3)), [1 2], bad), ia, '3 x 1');
bad = vals;
bad{3} = {1};
expect_error(@() cm('skeleton_put', sid, 1, single(eye(3)), [1 2], bad), ia, 'int16');
cm('skeleton_put', sid, 1, single(eye(3)), [1 2; 2 3], vals);
s = w.skeleton(1);
check(isequal(s.edges, [1 2; 2 3]) && isequal(s.attributes.direction, single(eye(3))), 'the MEX write reads back');
expect_error(@() cm('skeleton_save', sid, 1, fullfile(ctx.tmp, 'no', 'such', 'dir', 'x.swc')), 'cloudvolume:io');
check(isequal(w.skeleton(1), s), 'a read after a failed save');
end

% vol.meshes and vol.skeletons (cv_mesh_get_each, cv_skeleton_get_each): one object per id in
% the order given, uint64 ids exact beyond 2^53, allow_missing leaving ids out, each equal to
% the one-id read.
function t_mesh_each(ctx)
L = CloudVolume(['file://', fullfile(ctx.meshes, 'legacy')]);
M = CloudVolume(['file://', fullfile(ctx.meshes, 'multilod_sharded')]);
S = CloudVolume(['file://', fullfile(ctx.meshes, 'skeletons_sharded')]);
U = CloudVolume(['file://', fullfile(ctx.meshes, 'skeletons')]);
cleanup = onCleanup(@() cellfun(@delete, {L, M, S, U}));
nf = 'cloudvolume:notFound';
ids = [uint64(5), parse_u64('18446744073709551614'), parse_u64('9007199254740993'), uint64(3)];
for vol = {L, M}
  v = vol{1};
  E = v.meshes(ids);
  check(isequal(size(E), [1 4]) && isa([E.id], 'uint64') && isequal([E.id], ids), '%s: ids in the order given', ...
        v.cloudpath);
  for k = 1:numel(ids)
    m = rmfield(E(k), 'id');
    check(~is_empty_mesh(m) && isequal(m, v.mesh(ids(k))), '%s: mesh %d alone', v.cloudpath, ids(k));
  end
  check(~isequal(E(3).vertices, E(4).vertices), 'ids 2^53 + 1 and 3: different meshes');
  check(isequal(v.meshes(fliplr(ids)), fliplr(E)), '%s: reversed ids, reversed meshes', v.cloudpath);
  D = v.meshes([3 3]);
  check(numel(D) == 2 && isequal(D(1), D(2), E(4)), '%s: a repeated id', v.cloudpath);
  % Options reach every id.
  for opts = {{'weld', true}, {'weld', false}, {'lod', -1}}
    E = v.meshes([4 3], opts{1}{:});
    check(isequal(rmfield(E(1), 'id'), v.mesh(4, opts{1}{:})) && isequal(rmfield(E(2), 'id'), v.mesh(3, opts{1}{:})), ...
          '%s: options %s', v.cloudpath, strjoin(cellfun(@num2str, opts{1}, 'UniformOutput', false), ' '));
  end
  % allow_missing leaves missing ids out; without it one fails the call, naming it.
  A = v.meshes([999999 3 999998], 'allow_missing', true);
  check(isscalar(A) && A.id == 3 && isequal(rmfield(A, 'id'), v.mesh(3)), '%s: allow_missing', v.cloudpath);
  Z = v.meshes(uint64([999999 999998]), 'allow_missing', true);
  check(isstruct(Z) && isequal(size(Z), [1 0]) && isequal(sort(fieldnames(Z)), {'faces'; 'id'; 'vertices'}), ...
        '%s: only missing ids: a 1 x 0 struct array', v.cloudpath);
  expect_error(@() v.meshes([3 999999]), nf, '999999');
  expect_error(@() v.meshes(parse_u64('18446744073709551615')), nf, '18446744073709551615');
end
% Multi-resolution: the lods of each object on its own; object 4 has no fragment at lod 2, an
% empty mesh in its place (cloud-volume leaves it out of its dict).
E = M.meshes([4 3], 'lod', 2);
check(isequal([E.id], uint64([4 3])) && is_empty_mesh(E(1)) && ~is_empty_mesh(E(2)), 'an empty lod of one id');
check(isequal(rmfield(E(2), 'id'), M.mesh(3, 'lod', 2)), 'lod 2 of 3');
expect_error(@() M.meshes([3 4], 'lod', 3), 'cloudvolume:invalidArgument', 'lod 3');
% Legacy: cloud-volume's chunk_size weld on each id.
cs = [32 32 16];
E = L.meshes([3 1], 'chunk_size', cs);
check(isequal(rmfield(E(1), 'id'), L.mesh(3, 'chunk_size', cs)) && isequal(rmfield(E(2), 'id'), L.mesh(1, 'chunk_size', cs)), ...
      'legacy chunk_size per id');
% Skeletons, sharded and not.
sids = [uint64(3), parse_u64('9223372036854775819'), uint64(1), parse_u64('9007199254740993')];
for vol = {S, U}
  v = vol{1};
  T = v.skeletons(sids);
  check(isequal(size(T), [1 4]) && isequal([T.id], sids) && ...
        isequal(sort(fieldnames(T)), {'attributes'; 'edges'; 'id'; 'vertices'}), '%s: skeletons in the order given', ...
        v.cloudpath);
  for k = 1:numel(sids)
    check(isequal(rmfield(T(k), 'id'), v.skeleton(sids(k))), '%s: skeleton %d alone', v.cloudpath, sids(k));
  end
  check(isequal(v.skeletons(fliplr(sids)), fliplr(T)), '%s: reversed ids', v.cloudpath);
  A = v.skeletons([999999 1], 'allow_missing', true);
  check(isscalar(A) && A.id == 1 && isequal(rmfield(A, 'id'), v.skeleton(1)), '%s: allow_missing', v.cloudpath);
  Z = v.skeletons(999999, 'AllowMissing', true);
  check(isstruct(Z) && isequal(size(Z), [1 0]) && isequal(sort(fieldnames(Z)), {'attributes'; 'edges'; 'id'; 'vertices'}), ...
        '%s: only missing ids: a 1 x 0 struct array', v.cloudpath);
  expect_error(@() v.skeletons([1 999999]), nf, '999999');
  expect_error(@() v.skeletons([1 999999], 'allow_missing', false), nf, '999999');
end
% A bad object fails the whole call, naming it.
bs = CloudVolume(['file://', fullfile(ctx.meshes, 'bad', 'skeletons')]);
cleanup2 = onCleanup(@() delete(bs));
err = expect_error(@() bs.skeletons([102 101], 'allow_missing', true), 'cloudvolume:decode');
check(~isempty(regexp(err.message, 'skeletons/10[12]: ', 'once')), 'the bad skeleton is not named: %s', err.message);
end

% Every mesh and skeleton command of the MEX file with handles that are not live (never
% issued, deleted, not an id at all) and with one argument too few or too many: errors with
% identifiers, never a crash; nothing is written.
function t_mesh_bad_handles(ctx)
v = CloudVolume(['file://', fullfile(ctx.meshes, 'legacy')]);
cleanup = onCleanup(@() delete(v));
gone = CloudVolume(['file://', fullfile(ctx.meshes, 'skeletons')]);
gid = gone.Id;
delete(gone);
cm = @(varargin) CloudVolume.call_mex(varargin{:});
obj = fullfile(ctx.tmp, 'handles.obj');
swc = fullfile(ctx.tmp, 'handles.swc');
cmds = {{'mesh_get', 1, 0, -1, [], 0}, {'mesh_get_each', 1, 0, -1, [], 0}, {'mesh_save', 1, 0, -1, [], 0, obj}, ...
        {'mesh_lods', 1}, {'mesh_put', 1, single(eye(3)), [1 2 3]}, {'mesh_info'}, {'skeleton_get', 1}, ...
        {'skeleton_get_each', 1, 0}, {'skeleton_save', 1, swc}, {'skeleton_put', 1, single(eye(3)), [1 2], {}}, ...
        {'skeleton_info'}};
bads = {uint64(987654321), gid, 0, -1, NaN, Inf, 1.5, 'x', {}, struct(), [], [v.Id v.Id], true, int8(-3), ...
        complex(double(v.Id), 1), single(NaN), @() 1};
n = 0;
for c = cmds
  a = c{1};
  for b = bads
    err = expect_error(@() cm(a{1}, b{1}, a{2:end}), 'cloudvolume:invalidHandle');
    check(~isempty(err.message), '%s: no message', a{1});
    n = n + 1;
  end
  expect_error(@() cm(a{1}, v.Id, a{2:end}, 0), 'cloudvolume:invalidArgument', 'usage');
  expect_error(@() cm(a{1}, a{2:end - 1}), 'cloudvolume:invalidArgument', 'usage');
  expect_error(@() cm(a{1}), 'cloudvolume:invalidArgument', 'usage');
end
check(n == numel(cmds) * numel(bads), '%d calls', n);
check(~exist(obj, 'file') && ~exist(swc, 'file'), 'a refused call wrote a file');
expect_error(@() gone.mesh(1), 'cloudvolume:invalidHandle', 'deleted');
expect_error(@() gone.meshes(1), 'cloudvolume:invalidHandle', 'deleted');
expect_error(@() gone.skeletons(1), 'cloudvolume:invalidHandle', 'deleted');
expect_error(@() gone.putMesh(1, single(eye(3)), [1 2 3]), 'cloudvolume:invalidHandle', 'deleted');
% After all that the handle still works.
check(~is_empty_mesh(v.mesh(1)) && CloudVolume.live_handles() >= 1, 'the live handle still reads');
end

% =========================================================================================
% graphene:// meshes through the chunkedgraph double, against cloud-volume's reads of the same
% (tests/reference/graphene_meshes.py; tests/graphene_meshes.rs reads it too). Its faces are
% 0-based; the binding's are 1-based rows. Vertices bit for bit, faces exactly, in order.

function ids = gmesh_ids(c)
raw = c.ids;
if ischar(raw)
  raw = {raw};
end
ids = zeros(1, numel(raw), 'uint64');
for k = 1:numel(raw)
  ids(k) = parse_u64(raw{k});
end
end

function tf = gmesh_flag(o, name, value)
tf = isfield(o, name) && isequal(logical(o.(name)), value);
end

% The open options of a case: the token, its mip and timestamp.
function args = gmesh_open_args(c, token)
args = {'secrets', struct('token', token)};
if isfield(c.options, 'mip')
  args = [args, {'mip', c.options.mip}];
end
if isfield(c.options, 'timestamp')
  args = [args, {'timestamp', c.options.timestamp}];
end
end

% The mesh options of a case: weld, allow_missing (lod 0).
function opts = gmesh_mesh_args(o)
opts = {};
if gmesh_flag(o, 'remove_duplicate_vertices', true)
  opts = {'weld', true};
elseif gmesh_flag(o, 'deduplicate_chunk_boundaries', false)
  opts = {'weld', false};
end
if gmesh_flag(o, 'allow_missing', true)
  opts = [opts, {'allow_missing', true}];
end
end

function n = gmesh_compare(ctx, m, it, what)
V = read_npy(fullfile(ctx.gmesh_dir, it.vertices));
F = read_npy(fullfile(ctx.gmesh_dir, it.faces));
check(isa(V, 'single') && isa(F, 'uint32'), '%s: the .npy files are %s and %s', what, class(V), class(F));
check_same(m.vertices, V, [what, ': vertices']);
check(isa(m.faces, 'double') && isequal(size(m.faces), size(F)) && isequal(m.faces, double(F) + 1), ...
      '%s: faces differ from cloud-volume''s (plus 1)', what);
check(size(V, 1) > 0 && size(F, 1) > 0, '%s: an empty mesh recorded', what);
n = size(V, 1);
end

function t_graphene_meshes(ctx)
m = jsondecode(fileread(fullfile(ctx.gmesh_dir, 'manifest.json')));
cs = as_cell(m.cases);
nf = 'cloudvolume:notFound';
counts = struct('reads', 0, 'fused', 0, 'errors', 0, 'allow_missing', 0, 'absent', 0, 'skipped', 0, 'vertices', 0);
for i = 1:numel(cs)
  c = cs{i};
  o = c.options;
  if any(isfield(o, {'bounding_box', 'bypass', 'use_byte_offsets', 'info'}))
    counts.skipped = counts.skipped + 1;   % calls the library does not offer; info handed over
    continue;
  end
  ids = gmesh_ids(c);
  what = c.id;
  open_args = gmesh_open_args(c, m.token);
  v = CloudVolume([ctx.gmesh_url, '/', c.table], open_args{:});
  cleanup = onCleanup(@() delete(v));
  mo = gmesh_mesh_args(o);
  fused = gmesh_flag(o, 'fuse', true) || isequal(c.fused, true);
  if ~isempty(c.error)
    % cloud-volume's IndexError "No meshes found.": a root without a mesh.
    if fused
      expect_error(@() v.mesh(ids, mo{:}), nf, sprintf('%d', ids(1)));
    else
      expect_error(@() v.meshes(ids, mo{:}), nf, sprintf('%d', ids(1)));
    end
    counts.errors = counts.errors + 1;
    clear cleanup;
    continue;
  end
  items = as_cell(c.expected);
  if fused
    check(numel(items) == 1, '%s: %d fused meshes recorded', what, numel(items));
    got = v.mesh(ids, mo{:});
    check(isstruct(got) && isequal(sort(fieldnames(got)), {'faces'; 'vertices'}), '%s: not a mesh struct', what);
    counts.vertices = counts.vertices + gmesh_compare(ctx, got, items{1}, [what, ' (fused)']);
    counts.fused = counts.fused + 1;
    clear cleanup;
    continue;
  end
  E = v.meshes(ids, mo{:});
  want = zeros(1, numel(items), 'uint64');
  for k = 1:numel(items)
    want(k) = parse_u64(items{k}.id);
  end
  % In the order of ids; an id cloud-volume left out (allow_missing) is left out here too.
  check(isequal(size(E), [1 numel(items)]) && isequal([E.id], ids(ismember(ids, want))), ...
        '%s: meshes of %s, cloud-volume %s', what, mat2str(double([E.id])), mat2str(double(want)));
  for k = 1:numel(items)
    j = find([E.id] == want(k), 1);
    check(~isempty(j), '%s: no mesh of %d', what, want(k));
    counts.vertices = counts.vertices + gmesh_compare(ctx, rmfield(E(j), 'id'), items{k}, ...
                                                      sprintf('%s [%d]', what, want(k)));
  end
  if gmesh_flag(o, 'allow_missing', true)
    counts.allow_missing = counts.allow_missing + 1;
    counts.absent = counts.absent + numel(ids) - numel(items);
  else
    check(numel(items) == numel(ids), '%s: cloud-volume left out ids without allow_missing', what);
    counts.reads = counts.reads + 1;
  end
  clear cleanup;
end
fprintf('     graphene meshes: %d reads, %d fused, %d allow_missing (%d absent), %d errors, %d skipped; %d vertices\n', ...
        counts.reads, counts.fused, counts.allow_missing, counts.absent, counts.errors, counts.skipped, counts.vertices);
check(counts.reads >= 60 && counts.fused >= 2 && counts.errors >= 2, 'too few cases: %s', jsonencode(counts));
check(counts.allow_missing >= 3 && counts.absent >= 3, 'too few allow_missing cases: %s', jsonencode(counts));
end

function t_graphene_meshes_api(ctx)
m = jsondecode(fileread(fullfile(ctx.gmesh_dir, 'manifest.json')));
cs = as_cell(m.cases);
plain = uint64(0);
meshless = uint64(0);
for i = 1:numel(cs)
  c = cs{i};
  if ~strcmp(c.table, 'meshes') || ~isempty(fieldnames(c.options))
    continue;
  end
  if isempty(c.error) && plain == 0
    plain = gmesh_ids(c);
  elseif ~isempty(c.error) && meshless == 0
    meshless = gmesh_ids(c);
  end
end
check(plain ~= 0 && meshless ~= 0, 'no plain read or meshless root among the cases');
url = [ctx.gmesh_url, '/meshes'];
v = CloudVolume(url, 'secrets', struct('token', m.token));
cleanup = onCleanup(@() delete(v));
nf = 'cloudvolume:notFound';
check(v.meshLods(plain) == 1, 'meshLods: %d', v.meshLods(plain));
expect_error(@() v.mesh(plain, 'lod', 1), 'cloudvolume:invalidArgument');
expect_error(@() v.mesh(meshless), nf, sprintf('%d', meshless));
expect_error(@() v.meshes([plain meshless]), nf, sprintf('%d', meshless));
% (A fused read may order a mesh's faces otherwise than its read on its own, as cloud-volume's
% fuse does: each is compared with the same call of the plain id alone.)
A = v.meshes([meshless plain], 'allow_missing', true);
alone = v.meshes(plain);
check(isscalar(A) && A.id == plain && isequal(A, alone) && ~is_empty_mesh(rmfield(alone, 'id')), ...
      'allow_missing: the meshless root left out');
fused = v.mesh(plain);
check(isequal(v.mesh([meshless plain], 'allow_missing', true), fused) && ~is_empty_mesh(fused), ...
      'allow_missing fused: the other mesh alone');
% Tokens at open (the info request): wrong, valid without view permission; an unknown table.
expect_error(@() CloudVolume(url, 'secrets', struct('token', m.bad_token)), 'cloudvolume:auth');
expect_error(@() CloudVolume(url, 'secrets', struct('token', m.forbidden_token)), 'cloudvolume:auth');
expect_error(@() CloudVolume([ctx.gmesh_url, '/nosuch'], 'secrets', struct('token', m.token)), nf);
end
