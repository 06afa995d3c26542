classdef CloudVolume < handle
%CLOUDVOLUME  A Neuroglancer Precomputed volume, read and written like cloud-volume.
%
%   vol = CloudVolume(cloudpath)
%   vol = CloudVolume(cloudpath, Name, Value, ...)
%
%   cloudpath: 'file:///abs/path/layer' (or a bare path), 'http(s)://host/layer',
%   'gs://bucket/layer', 's3://bucket/layer', optionally behind 'precomputed://';
%   'graphene://https://host/segmentation/table/t'; a DVID data instance
%   'dvid://host:port/uuid/name'; a BOSS channel 'boss://collection/experiment/channel' (or
%   'boss://http(s)://host/collection/experiment/channel').
%
%   Name-value options (cloud-volume's keyword names and defaults):
%     'mip'                 0      the scale that indexing and the properties use
%     'bounded'             true   refuse boxes leaving the volume (cloudvolume:outOfBounds);
%                                  false reads the outside as background_color
%     'autocrop'            false  crop boxes to the volume (the result is then smaller)
%     'fill_missing'        false  read missing chunks as background instead of failing
%     'background_color'    0      value of missing and outside voxels
%     'parallel'            true   requests in flight at most: true/false keep the library's
%                                  default (cores for files; on the network 24 workers and up
%                                  to 256 chunk reads), or a number
%     'max_inflight_bytes'  32 MiB bytes of fetched bodies held at once: decides how many
%                                  chunk reads are out (hundreds of small chunks, dozens of
%                                  1 MiB ones)
%     'cache'               false  cloud-volume's disk cache: true ($CLOUD_VOLUME_CACHE_DIR, else
%                                  ~/.cloudvolume/cache) or a directory, cloud-volume's tree
%     'non_aligned_writes'  false  allow writes off the chunk grid
%     'compress'            []     compression of written chunks: [], false, true/'gzip', 'zstd'
%     'compress_level', 'delete_black_uploads', 'timeout', 'max_attempts',
%     'gs_endpoint', 's3_endpoint'  as the library's options (README)
%     'info'                []     a struct (CloudVolume.create_new_info, vol.info) or JSON
%                                  text: creates the layer when it has no info; an existing
%                                  info must equal it (with 'overwrite', true it is replaced).
%                                  On dvid:// it creates the data instance (type from
%                                  data_type, channels and type; block size = chunk size); an
%                                  existing one is refused
%     'use_https'           false  read gs:// and s3:// through their public HTTPS endpoints
%     'agglomerate', 'timestamp', 'stop_layer', 'secrets'   graphene:// (cloud-volume's):
%                                  roots for supervoxels, as of a unix time, or ancestors at
%                                  a layer; the CAVE token (else cave-secret.json). 'secrets'
%                                  is also DVID's Bearer token and the BOSS's credentials (the
%                                  token, or a struct with protocol, host and token)
%     'ocp_format'          'npz'  ocp://: the cutout body to ask for, 'npz', 'raw' or 'hdf5'
%                                  (writes always post npz)
%     'cdn_cache', 'progress'      accepted and ignored
%   Any other name is passed to the library, which refuses unknown options.
%
%   Coordinates are CloudVolume.jl's: absolute voxel coordinates at the mip (voxel_offset
%   included, which may be negative; no shift to 1-based), and ranges are inclusive:
%
%     A = vol(x1:x2, y1:y2, z1:z2)      % x-y-z-channel array of the layer's class
%     A = vol(x1:x2, y1:y2, z1:z2, c)   % channels c (numbered from 0, as cloud-volume)
%     A = vol(:, :, z)                  % ':' is the whole extent; 'end' the last voxel
%     vol(x1:x2, y1:y2, z1:z2) = A      % A of the layer's class, x-y-z(-channel)
%     A = vol.cutout(lo, hi)            % lo, hi: 1x3, inclusive
%     vol.write(lo, A)                  % the box lo .. lo + size(A) - 1
%
%   Reads return uint8, int8, uint16, int16, uint32, int32, uint64, int64, single or double
%   as the layer's data_type, shaped x-y-z-channel (a single channel drops the 4th
%   dimension). Writes take exactly that class.
%
%   Label operations (uint32/uint64 layers; each also takes 'mip', m):
%
%     [labels, counts] = vol.unique(lo, hi)      % sorted uint64 labels, voxel counts
%     M = vol.labelMask(lo, hi, labels)          % logical: voxels holding one of labels
%     [A, labels] = vol.renumber(lo, hi)         % 0, 1, 2, ...: A == k - 1 for labels(k)
%     A = vol.download(lo, hi, 'label', L)       % or 'renumber', true; plain = cutout
%     A = vol.downloadPoint(pt, sz, 'coord_resolution', r)   % pt in mip 0 voxels
%     F = vol.downloadFiles(lo, hi)              % the stored chunk files (name, data)
%     A = vol.download(lo, hi, 'ChannelFirst', true)   % [c x y z], pydvid's channel-first view
%
%   Meshes and skeletons (cloud-volume's vol.mesh and vol.skeleton):
%
%     m = vol.mesh(ids, 'lod', L, 'weld', tf, 'chunk_size', [x y z], 'allow_missing', tf)
%                                                % the ids as one mesh: m.vertices n x 3
%                                                % single (nm), m.faces m x 3 double,
%                                                % 1-based vertex rows (patch's)
%     M = vol.meshes(ids, ...)                   % one mesh per id (cloud-volume's fuse=False):
%                                                % struct array, M(k).id (uint64), vertices, faces
%     vol.saveMesh(ids, 'cell.obj', ...)         % .obj, .ply or .stl; vol.mesh's options
%     n = vol.meshLods(id)                       % levels of detail (1: legacy)
%     vol.putMesh(id, vertices, faces)           % legacy meshes; faces 1-based (or putMesh(id, m))
%     s = vol.skeleton(id)                       % s.vertices, s.edges (1-based rows),
%                                                % s.attributes.radius, ... (n x components)
%     S = vol.skeletons(ids, 'allow_missing', tf)   % struct array: S(k).id, then skeleton's fields
%     vol.saveSkeleton(id, 'cell.swc')           % SWC
%     vol.putSkeleton(id, s, 'space', 'physical')   % s as vol.skeleton returns it
%     vol.meshInfo(), vol.skeletonInfo()         % the directories' info structs
%
%   Services: DVID repos (pydvid's create_new), then instances through 'info' (static):
%
%     uuid = CloudVolume.dvidCreateRepo('127.0.0.1:8000', 'Alias', a, 'Description', d)
%     vol = CloudVolume(['dvid://127.0.0.1:8000/', uuid, '/grey'], 'info', info, 'bounded', false)
%
%   Aligned image + segmentation (ImageryClient's image_and_segmentation_cutout; static):
%
%     [img, seg, grid] = CloudVolume.imageAndSegmentationCutout(imageVol, segVol, [lo; hi], ...
%         'Resolution', r, 'ImageMip', m, 'SegmentationMip', m, 'RootIds', ids, ...
%         'ScaleToBounds', tf, 'SplitSegmentations', tf, 'IncludeNullRoot', tf)
%     ... = CloudVolume.imageAndSegmentationCutout(imageVol, segVol, center, 'BboxSize', [w h d])
%     grid = CloudVolume.alignedGrid(imageVol, segVol, [lo; hi], ...)   % without reading
%     masks = CloudVolume.splitSegmentation(seg)   % struct array: id (uint64), mask (logical)
%     rgb = CloudVolume.segmentColor(ids)          % n x 3 uint8, the overlay palette
%     rgb = CloudVolume.overlayRgb(grey, seg, 'Alpha', 0.5, 'Outline', 0)   % x-y-3 uint8
%     png = CloudVolume.overlayPng(grey, seg, ...) % uint8 column: an RGB PNG file
%
%   Their boxes follow the rest of the class: [lo; hi] are the first and last voxel,
%   inclusive, absolute (here in voxels of 'Resolution'); ImageryClient's half-open bounds
%   [lo, hi) are [lo; hi - 1]. The library's error messages print boxes half-open.
%
%   Errors carry identifiers: cloudvolume:invalidArgument, cloudvolume:outOfBounds,
%   cloudvolume:notFound, cloudvolume:io, cloudvolume:auth, cloudvolume:decode,
%   cloudvolume:unsupported, cloudvolume:internal (from the library, with its message),
%   cloudvolume:invalidHandle (a deleted volume), cloudvolume:notBuilt (MEX missing).
%
%   delete(vol) releases the handle now; calling it again is harmless.
%
%   See also CloudVolume.create_new_info, build_cloudvolume.

  properties (SetAccess = private)
    cloudpath = ''   % the path given to the constructor
    mip = 0          % the current mip; set it with vol.mip = m
    options = struct()  % the name-value options given to the constructor
  end

  properties (Dependent, SetAccess = private)
    bounds           % [first voxel; last voxel] at the mip (2x3, inclusive)
    voxel_offset     % first voxel (1x3)
    volume_size      % size in voxels (1x3)
    shape            % [x y z channels]
    chunk_size       % chunk size at the mip (1x3)
    resolution       % voxel size in nm at the mip (1x3)
    data_type        % the info's data_type: 'uint8', ..., 'float32', 'float64'
    matlab_class     % the class of arrays: 'uint8', ..., 'single', 'double'
    num_channels     % number of channels
    num_mips         % number of scales
    available_mips   % 0 : num_mips-1
    encoding         % chunk encoding at the mip: 'raw', 'jpeg', 'png', 'compressed_segmentation'
    layer_type       % the info's type: 'image' or 'segmentation'
    info             % the info file as a struct (jsondecode)
  end

  properties (SetAccess = private, Hidden)
    Id = []          % the id in the MEX file's registry; [] once deleted
    Meta = []        % the library's description of the layer (all mips)
    Autocrop = false
  end

  properties (Constant, Hidden)
    % Methods without outputs (the overloaded subsref must call them with nargout = 0).
    NoOutput = {'delete', 'write', 'delete_chunks', 'disp', 'display', 'saveMesh', 'putMesh', ...
                'saveSkeleton', 'putSkeleton'}
  end

  methods
    function obj = CloudVolume(cloudpath, varargin)
      if nargin < 1
        error('cloudvolume:invalidArgument', 'usage: vol = CloudVolume(cloudpath, Name, Value, ...)');
      end
      cloudpath = CloudVolume.text_arg(cloudpath, 'the cloudpath');
      [json, m, autocrop, info, opts] = CloudVolume.parse_options(varargin);
      obj.cloudpath = cloudpath;
      obj.options = opts;
      obj.Autocrop = autocrop;
      if isempty(info)
        obj.Id = CloudVolume.call_mex('open', cloudpath, json);
      elseif CloudVolume.is_service(cloudpath)
        % A service keeps no info file: the library makes the instance from the info.
        obj.Id = CloudVolume.call_mex('create', cloudpath, CloudVolume.info_to_json(info), json);
      else
        obj.Id = CloudVolume.open_or_create(cloudpath, CloudVolume.info_to_json(info), json, opts);
      end
      try
        obj.Meta = CloudVolume.call_mex('meta', obj.Id);
        if m >= obj.Meta.num_mips
          error('cloudvolume:invalidArgument', 'mip %d: %s has mips 0 to %d', m, cloudpath, obj.Meta.num_mips - 1);
        end
        obj.mip = m;
      catch err
        obj.delete();
        rethrow(err);
      end
    end

    function delete(obj)
      %DELETE  Release the handle (idempotent: a second call does nothing).
      if ~isempty(obj.Id)
        id = obj.Id;
        try
          cloudvolume_mex('free', id);
        catch
          % A destructor never throws; the registry makes a stale id harmless.
        end
        obj.Id = [];
      end
    end

    function tf = is_open(obj)
      %IS_OPEN  True until delete(vol).
      tf = ~isempty(obj.Id);
    end

    % -------------------------------------------------------------------------------------
    % Properties.

    function v = get.bounds(obj)
      v = [obj.voxel_offset; obj.voxel_offset + obj.volume_size - 1];
    end
    function v = get.voxel_offset(obj)
      meta = obj.layer_meta();
      v = meta.voxel_offset(obj.mip + 1, :);
    end
    function v = get.volume_size(obj)
      meta = obj.layer_meta();
      v = meta.size(obj.mip + 1, :);
    end
    function v = get.shape(obj)
      v = [obj.volume_size, obj.num_channels];
    end
    function v = get.chunk_size(obj)
      meta = obj.layer_meta();
      v = meta.chunk_size(obj.mip + 1, :);
    end
    function v = get.resolution(obj)
      meta = obj.layer_meta();
      v = meta.resolution(obj.mip + 1, :);
    end
    function v = get.data_type(obj)
      meta = obj.layer_meta();
      v = meta.data_type;
    end
    function v = get.matlab_class(obj)
      meta = obj.layer_meta();
      v = CloudVolume.class_of(meta.data_type);
    end
    function v = get.num_channels(obj)
      meta = obj.layer_meta();
      v = meta.num_channels;
    end
    function v = get.num_mips(obj)
      meta = obj.layer_meta();
      v = meta.num_mips;
    end
    function v = get.available_mips(obj)
      meta = obj.layer_meta();
      v = 0:meta.num_mips - 1;
    end
    function v = get.encoding(obj)
      meta = obj.layer_meta();
      v = meta.encoding{obj.mip + 1};
    end
    function v = get.layer_type(obj)
      i = obj.info;
      v = '';
      if isfield(i, 'type')
        v = i.type;
      end
    end
    function v = get.info(obj)
      v = jsondecode(CloudVolume.call_mex('info', obj.live_id()));
    end

    % -------------------------------------------------------------------------------------
    % Reads and writes.

    function A = cutout(obj, lo, hi, varargin)
      %CUTOUT  Read the box lo .. hi (1x3 each, inclusive, absolute voxels at the mip).
      %   A = vol.cutout(lo, hi)
      %   A = vol.cutout(lo, hi, 'mip', m)
      % A is x-y-z-channel, of the layer's class.
      m = obj.mip_arg(varargin);
      lo = CloudVolume.point_arg(lo, 'lo');
      hi = CloudVolume.point_arg(hi, 'hi');
      if any(hi < lo)
        error('cloudvolume:invalidArgument', ...
              'hi %s is below lo %s on some axis (both are inclusive corners of the box)', mat2str(hi), mat2str(lo));
      end
      A = obj.read_box(m, lo, hi + 1);
    end

    function write(obj, lo, A, varargin)
      %WRITE  Write A (x-y-z or x-y-z-channel, the layer's class) at lo (1x3).
      %   vol.write(lo, A)
      %   vol.write(lo, A, 'mip', m)
      % The box lo .. lo + size(A) - 1 must be on the chunk grid (or reach the volume edge)
      % unless the volume was opened with 'non_aligned_writes', true.
      m = obj.mip_arg(varargin);
      lo = CloudVolume.point_arg(lo, 'lo');
      obj.check_array(A, []);
      sz = size(A);
      sz(end + 1:3) = 1;
      obj.write_box(m, lo, lo + sz(1:3), A);
    end

    function V = scattered_points(obj, pts, varargin)
      %SCATTERED_POINTS  Values at n points (n x 3, absolute voxels at the mip): n x channels.
      %   V = vol.scattered_points(pts)
      %   V = vol.scattered_points(pts, 'mip', m)
      % Each distinct chunk is fetched once.
      m = obj.mip_arg(varargin);
      if ~CloudVolume.is_int_array(pts) || (size(pts, 2) ~= 3 && ~isempty(pts)) || ndims(pts) ~= 2
        error('cloudvolume:invalidArgument', 'the points must be an n x 3 matrix of integers (one x, y, z per row)');
      end
      V = CloudVolume.call_mex('points', obj.live_id(), m, reshape(pts, [], 3).').';
    end

    function tf = exists(obj, lo, hi, varargin)
      %EXISTS  Which chunks of the box lo .. hi (inclusive) are stored: a logical column,
      %   one per chunk meeting the box inside the bounds, x fastest (named by chunk_names).
      m = obj.mip_arg(varargin);
      [lo, hi] = obj.box_arg(lo, hi);
      tf = CloudVolume.call_mex('exists', obj.live_id(), m, lo, hi);
    end

    function names = chunk_names(obj, lo, hi, varargin)
      %CHUNK_NAMES  File names ('<scale key>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>') of the chunks of
      %   the box lo .. hi (inclusive) inside the bounds, in the order of vol.exists.
      m = obj.mip_arg(varargin);
      [lo, hi] = obj.box_arg(lo, hi);
      meta = obj.layer_meta();
      blo = meta.voxel_offset(m + 1, :);
      bhi = blo + meta.size(m + 1, :);
      c = meta.chunk_size(m + 1, :);
      i = obj.info;
      if iscell(i.scales)
        key = i.scales{m + 1}.key;
      else
        key = i.scales(m + 1).key;
      end
      starts = cell(1, 3);
      for d = 1:3
        l = max(lo(d), blo(d));
        h = min(hi(d), bhi(d));
        if h <= l
          starts{d} = zeros(1, 0);
        else
          starts{d} = blo(d) + c(d) * (floor((l - blo(d)) / c(d)) : ceil((h - blo(d)) / c(d)) - 1);
        end
      end
      names = cell(numel(starts{1}) * numel(starts{2}) * numel(starts{3}), 1);
      k = 0;
      for z0 = starts{3}
        for y0 = starts{2}
          for x0 = starts{1}
            k = k + 1;
            names{k} = sprintf('%s/%d-%d_%d-%d_%d-%d', key, x0, min(x0 + c(1), bhi(1)), ...
                               y0, min(y0 + c(2), bhi(2)), z0, min(z0 + c(3), bhi(3)));
          end
        end
      end
    end

    % -------------------------------------------------------------------------------------
    % Label operations (uint32/uint64 layers, Precomputed and graphene).

    function [labels, counts] = unique(obj, lo, hi, varargin)
      %UNIQUE  The labels of the box lo .. hi (inclusive), sorted, as a uint64 column, and
      %   their voxel counts; counted chunk by chunk without reading the box into memory.
      %   [labels, counts] = vol.unique(lo, hi)
      %   ... = vol.unique(lo, hi, 'mip', m)
      % With 'autocrop' the box is cropped to the bounds first (as cloud-volume crops it).
      m = obj.mip_arg(varargin);
      [lo, hi] = obj.label_box(m, lo, hi);
      if any(hi <= lo)
        labels = zeros(0, 1, 'uint64');
        counts = zeros(0, 1, 'uint64');
        return;
      end
      u = CloudVolume.call_mex('unique', obj.live_id(), m, lo, hi);
      labels = u(:, 1);
      counts = u(:, 2);
    end

    function M = labelMask(obj, lo, hi, labels, varargin)
      %LABELMASK  A logical array of the box lo .. hi (inclusive): true where a voxel holds
      %   one of labels (cloud-volume's download(bbox, label=L)).
      %   M = vol.labelMask(lo, hi, labels)
      %   M = vol.labelMask(lo, hi, labels, 'mip', m)
      % labels: a numeric vector (uint64 for labels beyond 2^53), [] for none. M is
      % x-y-z-channel like vol.cutout(lo, hi); also vol.download(lo, hi, 'label', labels).
      m = obj.mip_arg(varargin);
      [lo, hi] = obj.label_box(m, lo, hi);
      if any(hi <= lo)
        M = false(obj.box_shape(lo, hi));
        return;
      end
      M = CloudVolume.call_mex('label_mask', obj.live_id(), m, lo, hi, labels);
    end

    function A = downloadPoint(obj, pt, sz, varargin)
      %DOWNLOADPOINT  cloud-volume's download_point: sz voxels (1 or 3 numbers) around pt, given
      %   in mip 0 voxels, or in voxels of 'coord_resolution' (nm), read at 'mip'.
      %   A = vol.downloadPoint([x y z], 256)
      %   A = vol.downloadPoint([x y z], [64 64 1], 'mip', 1, 'coord_resolution', [4 4 40])
      [m, o] = obj.method_options('downloadPoint', varargin, {'coord_resolution'});
      cr = [];
      if isfield(o, 'coord_resolution')
        cr = double(o.coord_resolution);
      end
      if isscalar(sz)
        sz = [sz sz sz];
      end
      b = CloudVolume.call_mex('point_box', obj.live_id(), m, double(pt), sz, cr);
      A = obj.read_box(m, b(1, :), b(2, :));
    end

    function [A, labels] = renumber(obj, lo, hi, varargin)
      %RENUMBER  The box lo .. hi (inclusive) with its labels renumbered 1, 2, ... in ascending
      %   order (0 kept), in the smallest unsigned class that holds them: A(i) stands for
      %   labels(double(A(i)) + 1).
      %   [A, labels] = vol.renumber(lo, hi)
      %   [A, labels] = vol.renumber(lo, hi, 'mip', m)
      % labels is a uint64 column with labels(1) = 0; A is x-y-z-channel like vol.cutout, of
      % class uint8, uint16, uint32 or uint64. (cloud-volume's download(bbox, renumber=True)
      % returns the mapping as a dict; labels is its inverse: A == k - 1 where the voxel held
      % labels(k).) Also [A, labels] = vol.download(lo, hi, 'renumber', true).
      m = obj.mip_arg(varargin);
      [lo, hi] = obj.label_box(m, lo, hi);
      if any(hi <= lo)
        A = zeros(obj.box_shape(lo, hi), 'uint8');
        labels = uint64(0);
        return;
      end
      r = CloudVolume.call_mex('renumber', obj.live_id(), m, lo, hi);
      A = r.data;
      labels = r.labels;
    end

    function varargout = download(obj, lo, hi, varargin)
      %DOWNLOAD  cloud-volume's download(bbox, mip=, label=, renumber=) of the box lo .. hi
      %   (inclusive, absolute voxels at the mip):
      %   A = vol.download(lo, hi)                       % = vol.cutout(lo, hi)
      %   A = vol.download(lo, hi, 'mip', m)
      %   M = vol.download(lo, hi, 'label', L)           % = vol.labelMask(lo, hi, L): logical
      %   [A, labels] = vol.download(lo, hi, 'renumber', true)   % = vol.renumber(lo, hi)
      %   A = vol.download(lo, hi, 'ChannelFirst', true) % [c x y z]: permute(cutout, [4 1 2 3])
      % 'label' and 'renumber' (uint32/uint64 layers) are not taken together. 'ChannelFirst'
      % (also 'channel_first'; default false) gives every array channel first, as pydvid's
      % cxyz volumes (channel first, Fortran order): size [c x y z] even for one channel, so
      % A(k, x, y, z) is channel k - 1 of voxel (x, y, z) of the box.
      [m, o] = obj.method_options('download', varargin, {'label', 'renumber', 'channelfirst', 'channel_first'});
      cf = false;
      for f = {'channelfirst', 'channel_first'}
        if isfield(o, f{1})
          cf = CloudVolume.logical_arg(o.(f{1}), 'ChannelFirst');
        end
      end
      has_label = isfield(o, 'label');
      ren = false;
      if isfield(o, 'renumber')
        ren = o.renumber;
        if ~(islogical(ren) || isnumeric(ren)) || ~isscalar(ren) || ~(ren == 0 || ren == 1)
          error('cloudvolume:invalidArgument', 'download: ''renumber'' must be true or false');
        end
        ren = logical(ren);
      end
      if has_label && ren
        error('cloudvolume:invalidArgument', 'download: give ''label'' or ''renumber'', not both');
      end
      if has_label
        varargout = {obj.labelMask(lo, hi, o.label, 'mip', m)};
      elseif ren
        [A, l] = obj.renumber(lo, hi, 'mip', m);
        varargout = {A, l};
      else
        varargout = {obj.cutout(lo, hi, 'mip', m)};
      end
      if cf
        varargout{1} = permute(varargout{1}, [4 1 2 3]);
      end
    end

    function files = downloadFiles(obj, lo, hi, varargin)
      %DOWNLOADFILES  cloud-volume's download_files: the stored chunk files the box lo .. hi
      %   (inclusive) meets, a struct array with fields name and data (uint8), decompressed
      %   unless the option decompress is false.
      [m, o] = obj.method_options('downloadFiles', varargin, {'decompress'});
      dec = true;
      if isfield(o, 'decompress')
        dec = logical(o.decompress);
      end
      [lo, hi] = obj.box_arg(lo, hi);
      files = CloudVolume.call_mex('download_files', obj.live_id(), m, lo, hi, double(dec));
    end

    function delete_chunks(obj, lo, hi, varargin)
      %DELETE_CHUNKS  Delete the chunks of the chunk-aligned box lo .. hi (inclusive);
      %   they then read as missing. (cloud-volume's vol.delete(bbox).)
      m = obj.mip_arg(varargin);
      [lo, hi] = obj.box_arg(lo, hi);
      CloudVolume.call_mex('delete_chunks', obj.live_id(), m, lo, hi);
    end

    function m = add_scale(obj, factor, chunk_size)
      %ADD_SCALE  Add a scale downsampled from mip 0 by factor (1x3), with chunk_size (1x3,
      %   default mip 0's); writes the info and returns the new mip. The data is not
      %   downsampled: write it.
      if nargin < 3
        chunk_size = [];
      end
      m = CloudVolume.call_mex('add_scale', obj.live_id(), factor, chunk_size);
      obj.Meta = CloudVolume.call_mex('meta', obj.Id);
    end

    % -------------------------------------------------------------------------------------
    % Meshes and skeletons (cloud-volume's vol.mesh and vol.skeleton).

    function m = mesh(obj, ids, varargin)
      %MESH  The mesh of segments ids, as one (cloud-volume's vol.mesh.get([a, b, c])).
      %   m = vol.mesh(id)
      %   m = vol.mesh([a b c], 'lod', L, 'weld', tf, 'chunk_size', [x y z], 'allow_missing', tf)
      % m is a struct: vertices, n x 3 single (x, y, z in physical nm per row), and faces, an
      % m x 3 double matrix of vertex ROWS, 1-based (patch('Vertices', m.vertices, 'Faces',
      % m.faces), triangulation(m.faces, double(m.vertices)); cloud-volume's faces are these
      % minus 1). Several ids are concatenated in ascending id order (whatever order they are
      % given in), each id's faces shifted past the vertices before it. Options:
      %   'lod'            0   level of detail of multi-resolution meshes (0 the finest, -1 the
      %                        coarsest; legacy meshes have only lod 0); vol.meshLods(id) counts
      %   'weld'           []  true merges equal vertices (cloud-volume's
      %                        remove_duplicate_vertices), false does not, [] as cloud-volume
      %                        (legacy meshes welded, multi-resolution ones not)
      %   'chunk_size'     []  legacy meshes: weld only on the planes of this chunk grid (voxels
      %                        at the meshes' mip), as cloud-volume's chunk_size
      %   'allow_missing'  false  leave out ids without a mesh (else cloudvolume:notFound)
      args = CloudVolume.mesh_args('mesh', ids, varargin);
      m = CloudVolume.call_mex('mesh_get', obj.live_id(), args{:});
    end

    function M = meshes(obj, ids, varargin)
      %MESHES  The mesh of each of segments ids on its own (cloud-volume's
      %   vol.mesh.get(ids, fuse=False) for legacy meshes, vol.mesh.get(ids) for
      %   multi-resolution ones), fetched and decoded in parallel.
      %   M = vol.meshes([a b c])
      %   M = vol.meshes(ids, 'lod', L, 'weld', tf, 'chunk_size', [x y z], 'allow_missing', tf)
      % M is a 1 x n struct array in the order of ids: M(k).id (uint64), M(k).vertices (n x 3
      % single) and M(k).faces (m x 3 double, 1-based vertex rows), as vol.mesh's. The options
      % are vol.mesh's; with 'allow_missing', true the ids without a mesh are left out (check
      % [M.id]), else one is cloudvolume:notFound. cloud-volume never welds legacy meshes read
      % with fuse=False: pass 'weld', false for its result ('weld' [] welds legacy meshes).
      args = CloudVolume.mesh_args('meshes', ids, varargin);
      M = CloudVolume.call_mex('mesh_get_each', obj.live_id(), args{:});
    end

    function saveMesh(obj, ids, path, varargin)
      %SAVEMESH  Save vol.mesh(ids, ...) to a file: OBJ, PLY or binary STL, named by the
      %   extension of path (cloud-volume's to_obj / to_ply renderings, byte for byte).
      %   vol.saveMesh(ids, 'neuron.obj')
      %   vol.saveMesh([a b], 'cell.ply', 'lod', 1, ...)   % vol.mesh's options
      path = CloudVolume.text_arg(path, 'the path');
      args = CloudVolume.mesh_args('saveMesh', ids, varargin);
      CloudVolume.call_mex('mesh_save', obj.live_id(), args{:}, path);
    end

    function n = meshLods(obj, id)
      %MESHLODS  The number of levels of detail of segment id's mesh (1 for a legacy mesh);
      %   cloudvolume:notFound when it has none.
      n = CloudVolume.call_mex('mesh_lods', obj.live_id(), CloudVolume.segid_arg(id, 'meshLods'));
    end

    function putMesh(obj, id, vertices, faces)
      %PUTMESH  Write segment id's legacy mesh (cloud-volume's vol.mesh.put), replacing one
      %   stored before.
      %   vol.putMesh(id, vertices, faces)
      %   vol.putMesh(id, m)                 % a struct with vertices and faces (vol.mesh's)
      % vertices: n x 3 real (stored as single); faces: m x 3 vertex rows, 1-based, as
      % vol.mesh returns them. Gzipped unless the volume was opened with 'compress', false.
      % Multi-resolution mesh directories cannot be written (cloudvolume:unsupported).
      if nargin == 3 && isstruct(vertices) && isscalar(vertices) && all(isfield(vertices, {'vertices', 'faces'}))
        faces = vertices.faces;
        vertices = vertices.vertices;
      elseif nargin ~= 4
        error('cloudvolume:invalidArgument', 'usage: vol.putMesh(id, vertices, faces) or vol.putMesh(id, m)');
      end
      id = CloudVolume.segid_arg(id, 'putMesh');
      vertices = CloudVolume.vertices_arg(vertices, 'putMesh');
      faces = CloudVolume.rows_arg(faces, 3, 'putMesh: the faces');
      CloudVolume.call_mex('mesh_put', obj.live_id(), id, vertices, faces);
    end

    function i = meshInfo(obj)
      %MESHINFO  The mesh directory's info as the library reads it (a struct; '@type' becomes
      %   x_type, as jsondecode names it).
      i = jsondecode(CloudVolume.call_mex('mesh_info', obj.live_id()));
    end

    function s = skeleton(obj, id)
      %SKELETON  Segment id's skeleton (cloud-volume's vol.skeleton.get(id)).
      %   s = vol.skeleton(id)
      % s is a struct: vertices, n x 3 single (physical: the skeleton info's transform
      % applied), edges, an e x 2 double matrix of vertex ROWS, 1-based (cloud-volume's minus
      % 1), and attributes, a struct with one field per vertex attribute of the info (radius,
      % vertex_types, ...; names made valid with matlab.lang.makeValidName), each n x
      % num_components of the attribute's class (float32 -> single, uint8, int16, ...).
      r = CloudVolume.call_mex('skeleton_get', obj.live_id(), CloudVolume.segid_arg(id, 'skeleton'));
      s = struct('vertices', r.vertices, 'edges', r.edges, 'attributes', CloudVolume.attr_struct(r));
    end

    function S = skeletons(obj, ids, varargin)
      %SKELETONS  The skeletons of segments ids (cloud-volume's vol.skeleton.get([a, b, c])),
      %   fetched and decoded in parallel.
      %   S = vol.skeletons([a b c])
      %   S = vol.skeletons(ids, 'allow_missing', true)   % ids without a skeleton left out
      % S is a 1 x n struct array in the order of ids: S(k).id (uint64), then vol.skeleton's
      % fields (vertices, edges, attributes). Without 'allow_missing' (default false) an id
      % without a skeleton is cloudvolume:notFound.
      o = CloudVolume.static_options('skeletons', varargin, {'allowmissing'}, struct('allowmissing', false));
      ids = CloudVolume.ids_arg(ids, 'skeletons: the segment ids');
      if isempty(ids)
        error('cloudvolume:invalidArgument', 'skeletons: give at least one segment id');
      end
      allow = double(CloudVolume.logical_arg(o.allowmissing, 'allow_missing'));
      r = CloudVolume.call_mex('skeleton_get_each', obj.live_id(), ids, allow);
      S = struct('id', {}, 'vertices', {}, 'edges', {}, 'attributes', {});
      for k = 1:numel(r)
        S(k).id = r(k).id;
        S(k).vertices = r(k).vertices;
        S(k).edges = r(k).edges;
        S(k).attributes = CloudVolume.attr_struct(r(k));
      end
      S = reshape(S, 1, numel(r));
    end

    function saveSkeleton(obj, id, path)
      %SAVESKELETON  Save segment id's skeleton to path as SWC (osteoid's to_swc rendering).
      path = CloudVolume.text_arg(path, 'the path');
      CloudVolume.call_mex('skeleton_save', obj.live_id(), CloudVolume.segid_arg(id, 'saveSkeleton'), path);
    end

    function putSkeleton(obj, id, s, varargin)
      %PUTSKELETON  Write segment id's skeleton (cloud-volume's vol.skeleton.upload).
      %   vol.putSkeleton(id, s)
      %   vol.putSkeleton(id, s, 'space', 'physical')
      % s: a struct with vertices (n x 3 real, stored as single), edges (e x 2 vertex rows,
      % 1-based) and optionally attributes: a struct with a field for EVERY vertex attribute
      % of the skeleton info (vol.skeletonInfo), each n x num_components, converted to the
      % attribute's class; no attributes field (or an empty struct) writes none.
      % 'space': 'stored' (default, cloud-volume's): the vertices are written as given, in the
      % skeleton directory's stored space; 'physical': they are physical (as vol.skeleton
      % returns them) and mapped back through the inverse of the info's transform first, so
      % vol.putSkeleton(id, vol.skeleton(id), 'space', 'physical') rewrites the same skeleton.
      % Gzipped unless the volume was opened with 'compress', false; sharded skeleton
      % directories cannot be written (cloudvolume:unsupported).
      o = CloudVolume.static_options('putSkeleton', varargin, {'space'}, struct('space', 'stored'));
      sp = o.space;
      if isa(sp, 'string') && isscalar(sp)
        sp = char(sp);
      end
      if ~ischar(sp) || ~any(strcmpi(sp, {'stored', 'physical'}))
        error('cloudvolume:invalidArgument', 'putSkeleton: ''space'' must be ''stored'' or ''physical''');
      end
      if ~isstruct(s) || ~isscalar(s) || ~all(isfield(s, {'vertices', 'edges'}))
        error('cloudvolume:invalidArgument', 'putSkeleton: s must be a struct with vertices and edges (vol.skeleton''s)');
      end
      id = CloudVolume.segid_arg(id, 'putSkeleton');
      v = CloudVolume.vertices_arg(s.vertices, 'putSkeleton');
      edges = CloudVolume.rows_arg(s.edges, 2, 'putSkeleton: the edges');
      info = obj.skeletonInfo();
      if strcmpi(sp, 'physical') && ~isempty(v)
        t = reshape(double(info.transform), 4, 3).';   % row-major 3 x 4
        v = single((t(:, 1:3) \ (double(v).' - t(:, 4))).');
      end
      specs = CloudVolume.as_cell_list(info.vertex_attributes);
      values = {};
      if isfield(s, 'attributes') && isstruct(s.attributes) && ~isempty(fieldnames(s.attributes))
        a = s.attributes;
        given = fieldnames(a);
        wanted = cellfun(@(x) CloudVolume.attr_field(x.id), specs, 'UniformOutput', false);
        extra = setdiff(given, wanted);
        if ~isempty(extra)
          error('cloudvolume:invalidArgument', ['putSkeleton: the skeleton info has no vertex attribute %s ' ...
                '(it lists %s)'], strjoin(extra, ', '), strjoin(wanted, ', '));
        end
        values = cell(1, numel(specs));
        for k = 1:numel(specs)
          if ~isfield(a, wanted{k})
            error('cloudvolume:invalidArgument', ['putSkeleton: attribute %s of the skeleton info is missing ' ...
                  '(give every one, or none)'], wanted{k});
          end
          x = a.(wanted{k});
          cls = CloudVolume.class_of(specs{k}.data_type);
          nc = double(specs{k}.num_components);
          if ~(isnumeric(x) || islogical(x)) || ~isreal(x) || issparse(x)
            error('cloudvolume:invalidArgument', 'putSkeleton: attribute %s must be a real numeric array', wanted{k});
          end
          if nc == 1 && isvector(x)
            x = x(:);
          end
          if ~isequal(size(x), [size(v, 1), nc])
            error('cloudvolume:invalidArgument', 'putSkeleton: attribute %s must be %d x %d (vertices x components), not %s', ...
                  wanted{k}, size(v, 1), nc, mat2str(size(x)));
          end
          values{k} = cast(x, cls);
        end
      end
      CloudVolume.call_mex('skeleton_put', obj.live_id(), id, v, edges, values);
    end

    function i = skeletonInfo(obj)
      %SKELETONINFO  The skeleton directory's info as the library reads it (a struct: transform,
      %   the 12 numbers of a row-major 3 x 4 matrix; vertex_attributes with id, data_type and
      %   num_components, in the order putSkeleton writes them; cloud-volume's default when the
      %   layer has none).
      i = jsondecode(CloudVolume.call_mex('skeleton_info', obj.live_id()));
    end

    % -------------------------------------------------------------------------------------
    % Indexing.

    function varargout = subsref(obj, s)
      switch s(1).type
        case '()'
          A = obj.read_subs(s(1).subs);
          if numel(s) > 1
            [varargout{1:nargout}] = subsref(A, s(2:end));
          else
            varargout = {A};
          end
        case '.'
          if nargout == 0 && ischar(s(1).subs) && any(strcmp(s(1).subs, CloudVolume.NoOutput))
            builtin('subsref', obj, s);
            varargout = {};
          else
            varargout = cell(1, max(nargout, 1));
            [varargout{:}] = builtin('subsref', obj, s);
          end
        otherwise
          error('cloudvolume:invalidArgument', ...
                'CloudVolume takes () indexing, vol(x1:x2, y1:y2, z1:z2), not %s', s(1).type);
      end
    end

    function obj = subsasgn(obj, s, v)
      switch s(1).type
        case '()'
          if numel(s) > 1
            error('cloudvolume:invalidArgument', 'assign a whole box: vol(x1:x2, y1:y2, z1:z2) = A');
          end
          obj.write_subs(s(1).subs, v);
        case '.'
          if numel(s) == 1 && strcmp(s(1).subs, 'mip')
            obj.set_mip(v);
          else
            error('cloudvolume:invalidArgument', 'CloudVolume.%s cannot be set (only mip can)', ...
                  CloudVolume.describe_subs(s(1).subs));
          end
        otherwise
          error('cloudvolume:invalidArgument', 'CloudVolume takes () indexing, not %s', s(1).type);
      end
    end

    function n = numArgumentsFromSubscript(obj, s, ~)
      % MATLAB only (Octave does not call it): no-output methods take nargout = 0.
      if strcmp(s(1).type, '.') && ischar(s(1).subs) && any(strcmp(s(1).subs, obj.NoOutput))
        n = 0;
      else
        n = 1;
      end
    end

    function e = end(obj, k, n)
      % vol(a:end, ...): the last voxel along x, y or z at the mip; the last channel.
      if n < 3 || n > 4
        error('cloudvolume:invalidArgument', 'index a CloudVolume with 3 ranges (x, y, z) or 4 (x, y, z, channel)');
      end
      if k <= 3
        meta = obj.layer_meta();
        e = meta.voxel_offset(obj.mip + 1, k) + meta.size(obj.mip + 1, k) - 1;
      else
        meta = obj.layer_meta();
        e = meta.num_channels - 1;
      end
    end

    function disp(obj)
      if isempty(obj.Id)
        fprintf('  CloudVolume (deleted): %s\n', obj.cloudpath);
        return;
      end
      meta = obj.Meta;
      m = obj.mip + 1;
      lo = meta.voxel_offset(m, :);
      hi = lo + meta.size(m, :) - 1;
      fprintf('  CloudVolume %s\n', obj.cloudpath);
      fprintf('    %s (%s), %d channel(s), %s, mip %d of 0..%d\n', meta.data_type, ...
              CloudVolume.class_of(meta.data_type), meta.num_channels, meta.encoding{m}, obj.mip, ...
              meta.num_mips - 1);
      fprintf('    bounds [%d %d %d] .. [%d %d %d] (inclusive), chunk [%d %d %d], resolution [%g %g %g] nm\n', ...
              lo, hi, meta.chunk_size(m, :), meta.resolution(m, :));
    end
  end

  methods (Static)
    function info = create_new_info(num_channels, layer_type, data_type, encoding, resolution, ...
                                    voxel_offset, volume_size, chunk_size)
      %CREATE_NEW_INFO  A valid info (struct) for a new one-scale layer, as cloud-volume's.
      %   info = CloudVolume.create_new_info(num_channels, layer_type, data_type, encoding,
      %                                      resolution, voxel_offset, volume_size, chunk_size)
      % layer_type 'image' or 'segmentation'; data_type 'uint8', ..., 'float64'; encoding
      % 'raw', 'jpeg', 'png', 'compressed_segmentation'; chunk_size defaults to [128 128 64].
      % Pass it to CloudVolume(cloudpath, 'info', info) to create the layer.
      if nargin < 7
        error('cloudvolume:invalidArgument', ['usage: CloudVolume.create_new_info(num_channels, layer_type, ' ...
              'data_type, encoding, resolution, voxel_offset, volume_size[, chunk_size])']);
      end
      if nargin < 8
        chunk_size = [128 128 64];
      end
      info = jsondecode(CloudVolume.call_mex('new_info', CloudVolume.text_arg(layer_type, 'layer_type'), ...
                        CloudVolume.text_arg(data_type, 'data_type'), CloudVolume.text_arg(encoding, 'encoding'), ...
                        num_channels, resolution, voxel_offset, volume_size, chunk_size));
    end

    function v = version()
      %VERSION  The library's version string.
      v = CloudVolume.call_mex('version');
    end

    function uuid = dvidCreateRepo(server, varargin)
      %DVIDCREATEREPO  Create a repo on a DVID server (POST /api/repos, as pydvid's create_new
      %   does before adding a data instance); returns its root UUID (char, 32 hex digits).
      %   uuid = CloudVolume.dvidCreateRepo(server)
      %   uuid = CloudVolume.dvidCreateRepo(server, 'Alias', alias, 'Description', text)
      %   uuid = CloudVolume.dvidCreateRepo(server, ..., 'secrets', token, 'timeout', s, ...)
      % server: 'host:port', 'http(s)://host:port' or 'dvid://host:port'. Alias and
      % Description default to ''. Other names are the constructor's options (a Bearer token
      % in 'secrets', else dvid-secret.json). Then create instances with
      %   CloudVolume(sprintf('dvid://%s/%s/name', server, uuid), 'info', info)
      if nargin < 1
        error('cloudvolume:invalidArgument', ['usage: uuid = CloudVolume.dvidCreateRepo(server, ' ...
              '''Alias'', alias, ''Description'', text)']);
      end
      server = CloudVolume.text_arg(server, 'the server');
      if mod(numel(varargin), 2) ~= 0
        error('cloudvolume:invalidArgument', 'dvidCreateRepo: options come in name-value pairs');
      end
      alias = '';
      desc = '';
      rest = {};
      for i = 1:2:numel(varargin)
        name = varargin{i};
        if isa(name, 'string') && isscalar(name)
          name = char(name);
        end
        v = varargin{i + 1};
        if isa(v, 'string') && isscalar(v)
          v = char(v);
        end
        if ischar(name) && any(strcmpi(name, {'alias', 'description'}))
          if ~ischar(v) || size(v, 1) > 1
            error('cloudvolume:invalidArgument', 'dvidCreateRepo: ''%s'' must be text', name);
          end
          if strcmpi(name, 'alias')
            alias = v;
          else
            desc = v;
          end
        else
          rest(end + 1:end + 2) = {name, v}; %#ok<AGROW>
        end
      end
      json = [];
      if ~isempty(rest)
        json = CloudVolume.parse_options(rest);
      end
      uuid = CloudVolume.call_mex('dvid_create_repo', server, alias, desc, json);
    end

    % -------------------------------------------------------------------------------------
    % Aligned image + segmentation cutouts (ImageryClient's image_and_segmentation_cutout),
    % split masks, overlay pictures.

    function [img, seg, grid] = imageAndSegmentationCutout(imageVol, segVol, bounds, varargin)
      %IMAGEANDSEGMENTATIONCUTOUT  An image layer and a segmentation layer over one box, on one
      %   voxel grid (ImageryClient's image_and_segmentation_cutout).
      %   [img, seg, grid] = CloudVolume.imageAndSegmentationCutout(imageVol, segVol, bounds)
      %   [img, seg, grid] = CloudVolume.imageAndSegmentationCutout(imageVol, segVol, center, ...
      %                                                             'BboxSize', [w h d])
      %   ... = CloudVolume.imageAndSegmentationCutout(..., Name, Value, ...)
      %
      % bounds: [lo; hi] (2x3), the first and last voxel of the box, inclusive, in absolute
      % voxel coordinates of 'Resolution' (as vol.bounds and vol.cutout; ImageryClient's
      % half-open [lo, hi) is [lo; hi - 1] here). With 'BboxSize', bounds is the centre
      % (1x3): the box is lo = center - floor(size / 2) .. lo + size - 1 (ImageryClient's
      % bounds_from_center).
      %
      % Options (ImageryClient's keywords; 'image_mip' and the like are accepted too):
      %   'Resolution'          []     nm per voxel of bounds; [] = the image layer's at its mip
      %   'ImageMip'            []     mip of the image layer; [] = its lowest mip whose key
      %                                is not "placeholder" (not the handle's vol.mip)
      %   'SegmentationMip'     []     the same for the segmentation layer
      %   'RootIds'             'all'  'all' (or []) keeps every label; a vector of ids
      %                                (uint64 beyond 2^53) keeps those, the rest become 0
      %   'ScaleToBounds'       false  true: the output grid is 'Resolution' over exactly
      %                                bounds; false: the finer of the two layers' grids
      %   'SplitSegmentations'  false  true: seg is a struct array of masks (below)
      %   'IncludeNullRoot'     false  with SplitSegmentations, a mask for label 0 as well
      %   'BboxSize'            []     [w h d] (or [w h], d = 1): bounds is the centre
      %
      % img: x-y-z(-channel) of the image layer's class; seg: x-y-z uint64 (the segmentation's
      % first channel) of the same size, or with 'SplitSegmentations' a struct array, one
      % element per label in ascending order (0 first when included and present), fields
      % id (uint64) and mask (logical, size(img, 1:3)): CloudVolume.splitSegmentation.
      % grid: the voxel grid of both (CloudVolume.alignedGrid): lo, hi (inclusive), bounds
      % ([lo; hi]), shape, resolution (nm), image_mip, segmentation_mip.
      % Open both layers as the reads need them (e.g. 'fill_missing', true, 'bounded', false);
      % on graphene the handle's 'agglomerate' and 'timestamp' options apply.
      [args, o] = CloudVolume.aligned_args('imageAndSegmentationCutout', imageVol, segVol, bounds, varargin, true);
      r = CloudVolume.call_mex('aligned_cutout', args{:});
      img = r.image;
      seg = r.segmentation;
      grid = CloudVolume.grid_out(r.grid);
      if o.splitsegmentations
        seg = CloudVolume.splitSegmentation(seg, 'IncludeNullRoot', o.includenullroot);
      end
    end

    function grid = alignedGrid(imageVol, segVol, bounds, varargin)
      %ALIGNEDGRID  The grid CloudVolume.imageAndSegmentationCutout returns for the same
      %   arguments (options Resolution, ImageMip, SegmentationMip, RootIds, ScaleToBounds,
      %   BboxSize), without reading: a struct with lo, hi (inclusive, absolute voxels of
      %   resolution), bounds ([lo; hi]), shape (hi - lo + 1), resolution (nm), image_mip and
      %   segmentation_mip (the mips read).
      args = CloudVolume.aligned_args('alignedGrid', imageVol, segVol, bounds, varargin, false);
      grid = CloudVolume.grid_out(CloudVolume.call_mex('aligned_grid', args{:}));
    end

    function masks = splitSegmentation(seg, varargin)
      %SPLITSEGMENTATION  One logical mask per label of seg (ImageryClient's split
      %   segmentation): a struct array, labels ascending, fields id (uint64) and mask
      %   (logical, size(seg)).
      %   masks = CloudVolume.splitSegmentation(seg)
      %   masks = CloudVolume.splitSegmentation(seg, 'IncludeNullRoot', true)   % label 0 too
      % seg: uint64 (other integer classes are converted).
      o = CloudVolume.static_options('splitSegmentation', varargin, {'includenullroot'}, ...
                                     struct('includenullroot', false));
      incl = CloudVolume.logical_arg(o.includenullroot, 'IncludeNullRoot');
      seg = CloudVolume.ids_arg(seg, 'the segmentation');
      ids = unique(seg(:));
      if ~incl
        ids = ids(ids ~= 0);
      end
      M = CloudVolume.call_mex('split_masks', seg, ids);
      sz = size(seg);
      masks = repmat(struct('id', uint64(0), 'mask', false), numel(ids), 1);
      for k = 1:numel(ids)
        masks(k).id = ids(k);
        masks(k).mask = reshape(M(:, k), sz);
      end
    end

    function rgb = segmentColor(ids)
      %SEGMENTCOLOR  The overlay colour of segments: numel(ids) x 3 uint8 (R, G, B), the
      %   same in every picture (label 0 is never drawn). ids: numeric (uint64 beyond 2^53).
      rgb = CloudVolume.call_mex('segment_color', CloudVolume.ids_arg(ids, 'the segment ids'));
    end

    function rgb = overlayRgb(grey, seg, varargin)
      %OVERLAYRGB  A segmentation slice over a greyscale slice, as an x-y-3 uint8 array.
      %   rgb = CloudVolume.overlayRgb(grey, seg)
      %   rgb = CloudVolume.overlayRgb(grey, seg, 'Alpha', 0.5, 'Outline', 0)
      % grey: x-y uint8 (e.g. img(:, :, k)); seg: x-y ids of the same size (uint64, e.g.
      % seg(:, :, k)). A pixel of a label other than 0 is round(grey * (1 - Alpha) +
      % colour * Alpha) per channel with CloudVolume.segmentColor(label); with Outline n > 0
      % only those within n pixels (city block) of a pixel of another label; the rest grey.
      % rgb(x, y, :) is pixel (x, y); imwrite(permute(rgb, [2 1 3]), f) writes it upright.
      [g, s, a, n] = CloudVolume.overlay_args('overlayRgb', grey, seg, varargin);
      rgb = CloudVolume.call_mex('overlay_rgb', g, s, a, n);
    end

    function png = overlayPng(grey, seg, varargin)
      %OVERLAYPNG  CloudVolume.overlayRgb encoded as an RGB PNG file: a uint8 column of its
      %   bytes (x across, y down). Same arguments and options ('Alpha', 'Outline').
      %   fid = fopen('o.png', 'w'); fwrite(fid, CloudVolume.overlayPng(grey, seg)); fclose(fid);
      [g, s, a, n] = CloudVolume.overlay_args('overlayPng', grey, seg, varargin);
      png = CloudVolume.call_mex('overlay_png', g, s, a, n);
    end
  end

  methods (Static, Hidden)
    function varargout = call_mex(varargin)
      % The MEX file, with its errors' messages as the library wrote them (Octave prefixes
      % the MEX file's name to them).
      try
        [varargout{1:nargout}] = cloudvolume_mex(varargin{:});
      catch err
        CloudVolume.raise_clean(err);
      end
    end

    function n = live_handles()
      % Number of handles the MEX file holds (for tests: every delete frees one).
      n = CloudVolume.call_mex('live');
    end

    function tf = mex_locked()
      % Whether the MEX file is locked (it is while handles live).
      tf = CloudVolume.call_mex('locked');
    end

    function txt = info_to_json(info)
      % An info struct (from jsondecode) or JSON text as JSON text, one-element arrays kept
      % arrays: 'scales' is a list of objects and 'chunk_sizes' a list of triples.
      if isa(info, 'string') && isscalar(info)
        info = char(info);
      end
      if ischar(info)
        txt = info;
        return;
      end
      if ~isstruct(info) || ~isscalar(info)
        error('cloudvolume:invalidArgument', ...
              'info must be a struct (CloudVolume.create_new_info, vol.info) or JSON text; got a %s', class(info));
      end
      if isfield(info, 'scales')
        sc = info.scales;
        if isstruct(sc)
          sc = num2cell(sc(:).');
        elseif ~iscell(sc)
          error('cloudvolume:invalidArgument', 'info.scales must be a struct array or a cell array of structs');
        end
        for i = 1:numel(sc)
          if isstruct(sc{i}) && isfield(sc{i}, 'chunk_sizes') && isnumeric(sc{i}.chunk_sizes)
            cs = sc{i}.chunk_sizes;
            if mod(numel(cs), 3) ~= 0
              error('cloudvolume:invalidArgument', 'info.scales(%d).chunk_sizes must hold triples', i);
            end
            if size(cs, 2) ~= 3
              cs = reshape(cs, 3, []).';
            end
            sc{i}.chunk_sizes = num2cell(cs, 2).';
          end
        end
        info.scales = sc;
      end
      txt = jsonencode(info);
      % jsondecode renames the member "@type" (Neuroglancer's) to x_type; give it back.
      txt = strrep(txt, '"x_type":', '"@type":');
    end
  end

  methods (Access = private)
    function id = live_id(obj)
      if isempty(obj.Id)
        error('cloudvolume:invalidHandle', 'this CloudVolume (%s) was deleted', obj.cloudpath);
      end
      id = obj.Id;
    end

    function meta = layer_meta(obj)
      obj.live_id();
      meta = obj.Meta;
    end

    function set_mip(obj, m)
      if ~CloudVolume.is_int_array(m) || ~isscalar(m) || m < 0
        error('cloudvolume:invalidArgument', 'mip must be an integer >= 0');
      end
      meta = obj.layer_meta();
      n = meta.num_mips;
      if m >= n
        error('cloudvolume:invalidArgument', 'mip %d: %s has mips 0 to %d', m, obj.cloudpath, n - 1);
      end
      obj.mip = double(m);
    end

    % The mip of a ('mip', m) tail, else the current one.
    % The ('mip', m, NAME, value, ...) tail of method `what`: the mip (else the current one)
    % and a struct of the other options given, each one of `names`.
    function [m, o] = method_options(obj, what, args, names)
      m = obj.mip;
      o = struct();
      if mod(numel(args), 2) ~= 0
        error('cloudvolume:invalidArgument', '%s: options come in name-value pairs', what);
      end
      for i = 1:2:numel(args)
        name = args{i};
        if ~ischar(name)
          name = '';
        end
        name = lower(name);
        if strcmp(name, 'mip')
          m = obj.mip_arg({'mip', args{i + 1}});
        elseif any(strcmp(name, names))
          o.(name) = args{i + 1};
        else
          error('cloudvolume:invalidArgument', '%s takes the options %s', what, strjoin([{'mip'}, names], ', '));
        end
      end
    end

    function m = mip_arg(obj, args)
      m = obj.mip;
      if isempty(args)
        obj.live_id();
        return;
      end
      if numel(args) ~= 2 || ~ischar(args{1}) || ~strcmpi(args{1}, 'mip')
        error('cloudvolume:invalidArgument', 'the only option here is ''mip'', m');
      end
      m = args{2};
      if ~CloudVolume.is_int_array(m) || ~isscalar(m) || m < 0
        error('cloudvolume:invalidArgument', 'mip must be an integer >= 0');
      end
      m = double(m);
      meta = obj.layer_meta();
      n = meta.num_mips;
      if m >= n
        error('cloudvolume:invalidArgument', 'mip %d: %s has mips 0 to %d', m, obj.cloudpath, n - 1);
      end
    end

    % Inclusive corners to the half-open box, cropped with autocrop.
    function [lo, hi] = box_arg(obj, lo, hi)
      lo = CloudVolume.point_arg(lo, 'lo');
      hi = CloudVolume.point_arg(hi, 'hi');
      if any(hi < lo)
        error('cloudvolume:invalidArgument', 'hi %s is below lo %s on some axis (both are inclusive)', ...
              mat2str(hi), mat2str(lo));
      end
      hi = hi + 1;
    end

    % The inclusive corners of a label operation as the half-open box at mip m, cropped to
    % the bounds with autocrop (cloud-volume crops the bbox of unique and download so).
    function [lo, hi] = label_box(obj, m, lo, hi)
      [lo, hi] = obj.box_arg(lo, hi);
      if obj.Autocrop
        [lo, hi] = obj.crop(m, lo, hi);
      end
    end

    % The size of a read of [lo, hi): x-y-z, and the channels when there are several.
    function sz = box_shape(obj, lo, hi)
      sz = max(hi - lo, 0);
      nc = obj.Meta.num_channels;
      if nc > 1
        sz = [sz, nc];
      end
    end

    % Read [lo, hi) at mip m, every channel (autocrop applied).
    function A = read_box(obj, m, lo, hi)
      if obj.Autocrop
        [lo, hi] = obj.crop(m, lo, hi);
      end
      A = CloudVolume.call_mex('cutout', obj.live_id(), m, lo, hi);
    end

    function write_box(obj, m, lo, hi, A)
      if obj.Autocrop
        [clo, chi] = obj.crop(m, lo, hi);
        if ~isequal(clo, lo) || ~isequal(chi, hi)
          A = A(clo(1) - lo(1) + 1 : chi(1) - lo(1), clo(2) - lo(2) + 1 : chi(2) - lo(2), ...
                clo(3) - lo(3) + 1 : chi(3) - lo(3), :);
          lo = clo;
        end
      end
      CloudVolume.call_mex('write', obj.live_id(), m, lo, A);
    end

    function [lo, hi] = crop(obj, m, lo, hi)
      meta = obj.layer_meta();
      blo = meta.voxel_offset(m + 1, :);
      bhi = blo + meta.size(m + 1, :);
      lo = max(lo, blo);
      hi = max(min(hi, bhi), lo);
    end

    % Subscripts to a half-open box at the current mip and a channel selection (0-based
    % first and last, or [] for all).
    function [lo, hi, chans] = subs_box(obj, subs)
      n = numel(subs);
      if n < 3 || n > 4
        error('cloudvolume:invalidArgument', ...
              'index a CloudVolume with 3 ranges (x, y, z) or 4 (x, y, z, channel); got %d', n);
      end
      meta = obj.layer_meta();
      blo = meta.voxel_offset(obj.mip + 1, :);
      bhi = blo + meta.size(obj.mip + 1, :);
      lo = zeros(1, 3);
      hi = zeros(1, 3);
      axes = 'xyz';
      for d = 1:3
        r = subs{d};
        if ischar(r) && strcmp(r, ':')
          lo(d) = blo(d);
          hi(d) = bhi(d);
        else
          CloudVolume.check_range(r, sprintf('the %s index', axes(d)));
          if isempty(r)
            lo(d) = blo(d);
            hi(d) = blo(d);
          else
            lo(d) = double(r(1));
            hi(d) = double(r(end)) + 1;
          end
        end
      end
      chans = [];
      if n == 4
        r = subs{4};
        nc = meta.num_channels;
        if ~(ischar(r) && strcmp(r, ':'))
          CloudVolume.check_range(r, 'the channel index');
          if isempty(r) || r(1) < 0 || r(end) > nc - 1
            error('cloudvolume:invalidArgument', ...
                  'channels %s are not in 0:%d (channels are numbered from 0)', CloudVolume.show_range(r), nc - 1);
          end
          chans = double([r(1), r(end)]);
        end
      end
    end

    function A = read_subs(obj, subs)
      [lo, hi, chans] = obj.subs_box(subs);
      A = obj.read_box(obj.mip, lo, hi);
      if ~isempty(chans) && ~(chans(1) == 0 && chans(2) == obj.Meta.num_channels - 1)
        A = A(:, :, :, chans(1) + 1 : chans(2) + 1);
      end
    end

    function write_subs(obj, subs, A)
      [lo, hi, chans] = obj.subs_box(subs);
      nc = obj.Meta.num_channels;
      if ~isempty(chans) && ~(chans(1) == 0 && chans(2) == nc - 1)
        error('cloudvolume:invalidArgument', 'writes take every channel (0:%d or :)', nc - 1);
      end
      box = [hi - lo, nc];
      obj.check_array(A, box);
      if isscalar(A) && prod(box) ~= 1
        A = repmat(A, box);
      end
      obj.write_box(obj.mip, lo, hi, A);
    end

    % A must be a real array of the layer's class; with box = [x y z c], also of that size
    % (or a scalar).
    function check_array(obj, A, box)
      meta = obj.layer_meta();
      cls = CloudVolume.class_of(meta.data_type);
      if ~isnumeric(A) || ~strcmp(class(A), cls) || ~isreal(A) || issparse(A)
        what = class(A);
        if isnumeric(A) && ~isreal(A)
          what = ['complex ', what];
        elseif issparse(A)
          what = ['sparse ', what];
        end
        error('cloudvolume:invalidArgument', ...
              'the array is %s but the layer''s data_type is %s (MATLAB class %s); convert it first, e.g. %s(A)', ...
              what, obj.Meta.data_type, cls, cls);
      end
      sz = size(A);
      if ndims(A) > 4
        error('cloudvolume:invalidArgument', 'the array has %d dimensions; writes take x-y-z or x-y-z-channel arrays', ndims(A));
      end
      sz(end + 1:4) = 1;
      if isempty(box)
        if sz(4) ~= obj.Meta.num_channels
          error('cloudvolume:invalidArgument', ...
                'the array has %d channel(s) (size along dimension 4) but the layer has %d', sz(4), obj.Meta.num_channels);
        end
      elseif ~isscalar(A) && ~isequal(sz, box)
        error('cloudvolume:invalidArgument', 'the array is %s but the box is %dx%dx%d with %d channel(s)', ...
              strjoin(arrayfun(@num2str, size(A), 'UniformOutput', false), 'x'), box);
      end
    end
  end

  methods (Static, Access = private)
    % The MEX arguments of an aligned request and the options (lowercase, no underscores)
    % with their defaults; split: whether SplitSegmentations and IncludeNullRoot are taken.
    function [args, o] = aligned_args(what, imageVol, segVol, bounds, opts, split)
      if ~isa(imageVol, 'CloudVolume') || ~isscalar(imageVol) || ~isa(segVol, 'CloudVolume') || ~isscalar(segVol)
        error('cloudvolume:invalidArgument', ['usage: CloudVolume.%s(imageVol, segVol, bounds, Name, Value, ...) ' ...
              'with two CloudVolume objects'], what);
      end
      names = {'resolution', 'imagemip', 'segmentationmip', 'rootids', 'scaletobounds', 'bboxsize'};
      shown = {'Resolution', 'ImageMip', 'SegmentationMip', 'RootIds', 'ScaleToBounds', 'BboxSize'};
      if split
        names = [names, {'splitsegmentations', 'includenullroot'}];
        shown = [shown, {'SplitSegmentations', 'IncludeNullRoot'}];
      end
      % Names are case-insensitive, with or without underscores (ImageryClient's image_mip).
      if mod(numel(opts), 2) ~= 0
        error('cloudvolume:invalidArgument', '%s: options come in name-value pairs', what);
      end
      for i = 1:2:numel(opts)
        name = opts{i};
        if isa(name, 'string') && isscalar(name)
          name = char(name);
        end
        if ischar(name) && size(name, 1) == 1
          name = strrep(lower(name), '_', '');
        end
        if ~ischar(name) || ~any(strcmp(name, names))
          error('cloudvolume:invalidArgument', '%s takes the options %s', what, strjoin(shown, ', '));
        end
        opts{i} = name;
      end
      [~, o] = method_options(imageVol, what, opts, names);
      live_id(segVol);
      defaults = struct('resolution', [], 'imagemip', [], 'segmentationmip', [], 'rootids', 'all', ...
                        'scaletobounds', false, 'bboxsize', [], 'splitsegmentations', false, 'includenullroot', false);
      f = fieldnames(defaults);
      for i = 1:numel(f)
        if ~isfield(o, f{i})
          o.(f{i}) = defaults.(f{i});
        end
      end
      % The box: [lo; hi] inclusive, or a centre and BboxSize; half-open for the library
      % (which judges empty and inverted boxes).
      if isempty(o.bboxsize)
        if ~CloudVolume.is_int_array(bounds) || ~isequal(size(bounds), [2 3])
          error('cloudvolume:invalidArgument', ['%s: bounds must be [lo; hi], a 2x3 array of integers (the first ' ...
                'and last voxel, inclusive), or a centre with ''BboxSize'''], what);
        end
        lo = double(bounds(1, :));
        hi = double(bounds(2, :)) + 1;
      else
        sz = o.bboxsize;
        if ~CloudVolume.is_int_array(sz) || ~any(numel(sz) == [2 3]) || any(sz(:) < 1)
          error('cloudvolume:invalidArgument', '%s: ''BboxSize'' must be 2 or 3 positive integers', what);
        end
        sz = double(reshape(sz, 1, []));
        if numel(sz) == 2
          sz(3) = 1;
        end
        if ~CloudVolume.is_int_array(bounds) || numel(bounds) ~= 3
          error('cloudvolume:invalidArgument', '%s: with ''BboxSize'', bounds is the centre (3 integers)', what);
        end
        lo = double(reshape(bounds, 1, 3)) - floor(sz / 2);
        hi = lo + sz;
      end
      res = o.resolution;
      if ~isempty(res) && (~isnumeric(res) || ~isreal(res) || numel(res) ~= 3)
        error('cloudvolume:invalidArgument', '%s: ''Resolution'' must be 3 numbers (nm per voxel) or []', what);
      end
      if ~isempty(res)
        res = double(reshape(res, 1, 3));
      end
      im = CloudVolume.req_mip(o.imagemip, 'ImageMip', what);
      sm = CloudVolume.req_mip(o.segmentationmip, 'SegmentationMip', what);
      ids = o.rootids;
      if isa(ids, 'string') && isscalar(ids)
        ids = char(ids);
      end
      if isempty(ids) && isnumeric(ids)
        ids = 'all';
      end
      if ischar(ids)
        if ~strcmpi(ids, 'all')
          error('cloudvolume:invalidArgument', '%s: ''RootIds'' must be ''all'' or a vector of ids', what);
        end
        ids = 'all';
      else
        ids = CloudVolume.ids_arg(ids, sprintf('%s: ''RootIds''', what));
      end
      o.scaletobounds = CloudVolume.logical_arg(o.scaletobounds, 'ScaleToBounds');
      o.splitsegmentations = CloudVolume.logical_arg(o.splitsegmentations, 'SplitSegmentations');
      o.includenullroot = CloudVolume.logical_arg(o.includenullroot, 'IncludeNullRoot');
      args = {live_id(imageVol), live_id(segVol), lo, hi, res, im, sm, ids, o.scaletobounds};
    end

    % The MEX arguments (ids, lod, weld, chunk_size, allow_missing) of vol.mesh's options.
    function args = mesh_args(what, ids, opts)
      ids = CloudVolume.ids_arg(ids, sprintf('%s: the segment ids', what));
      if isempty(ids)
        error('cloudvolume:invalidArgument', '%s: give at least one segment id', what);
      end
      shown = {'lod', 'weld', 'chunk_size', 'allow_missing'};
      o = struct('lod', 0, 'weld', [], 'chunk_size', [], 'allow_missing', false);
      if mod(numel(opts), 2) ~= 0
        error('cloudvolume:invalidArgument', '%s: options come in name-value pairs', what);
      end
      for i = 1:2:numel(opts)
        name = opts{i};
        if isa(name, 'string') && isscalar(name)
          name = char(name);
        end
        k = [];
        if ischar(name) && size(name, 1) == 1
          k = find(strcmp(strrep(lower(name), '_', ''), strrep(shown, '_', '')), 1);
        end
        if isempty(k)
          error('cloudvolume:invalidArgument', '%s takes the options %s', what, strjoin(shown, ', '));
        end
        o.(shown{k}) = opts{i + 1};
      end
      lod = o.lod;
      if ~CloudVolume.is_int_array(lod) || ~isscalar(lod) || lod < -1 || lod > 2^31 - 1
        error('cloudvolume:invalidArgument', '%s: ''lod'' must be an integer >= 0, or -1 for the coarsest', what);
      end
      if isempty(o.weld) && (isnumeric(o.weld) || islogical(o.weld))
        weld = -1;
      else
        weld = double(CloudVolume.logical_arg(o.weld, 'weld'));
      end
      cs = o.chunk_size;
      if ~(isempty(cs) && isnumeric(cs))
        if ~CloudVolume.is_int_array(cs) || numel(cs) ~= 3 || any(cs(:) < 1)
          error('cloudvolume:invalidArgument', '%s: ''chunk_size'' must be 3 positive integers (voxels) or []', what);
        end
        cs = double(reshape(cs, 1, 3));
      end
      args = {ids, double(lod), weld, cs, double(CloudVolume.logical_arg(o.allow_missing, 'allow_missing'))};
    end

    function id = segid_arg(id, what)
      id = CloudVolume.ids_arg(id, sprintf('%s: the segment id', what));
      if ~isscalar(id)
        error('cloudvolume:invalidArgument', '%s takes one segment id (got %d)', what, numel(id));
      end
    end

    function v = vertices_arg(v, what)
      if ~(isnumeric(v) || islogical(v)) || ~isreal(v) || issparse(v) || ~ismatrix(v) || ...
         (size(v, 2) ~= 3 && ~isempty(v))
        error('cloudvolume:invalidArgument', '%s: the vertices must be an n x 3 real matrix (x, y, z per row)', what);
      end
      v = single(reshape(v, [], 3));
    end

    % Vertex rows (1-based), k per row, as double.
    function r = rows_arg(r, k, what)
      if ~CloudVolume.is_int_array(r) || ~ismatrix(r) || (size(r, 2) ~= k && ~isempty(r))
        error('cloudvolume:invalidArgument', '%s must be an m x %d matrix of vertex rows (integers, 1-based)', what, k);
      end
      r = double(reshape(r, [], k));
    end

    % The attributes of a MEX skeleton (names and values) as a struct, in the info's order.
    function a = attr_struct(r)
      a = struct();
      for k = 1:numel(r.names)
        a.(CloudVolume.attr_field(r.names{k})) = r.values{k};
      end
    end

    % The struct field of a skeleton attribute's name.
    function f = attr_field(name)
      if isvarname(name)
        f = name;
      else
        f = matlab.lang.makeValidName(name);
      end
    end

    % A decoded JSON array (struct array, cell array or []) as a 1 x n cell.
    function c = as_cell_list(x)
      if iscell(x)
        c = x(:).';
      elseif isstruct(x)
        c = num2cell(x(:).');
      else
        c = {};
      end
    end

    function m = req_mip(m, name, what)
      if isempty(m) && isnumeric(m)
        m = -1;
        return;
      end
      if ~CloudVolume.is_int_array(m) || ~isscalar(m) || m < 0
        error('cloudvolume:invalidArgument', '%s: ''%s'' must be an integer >= 0, or [] for the lowest mip not keyed "placeholder"', what, name);
      end
      m = double(m);
    end

    % The grid of the MEX file (half-open lo, hi) with the binding's inclusive corners.
    function g = grid_out(r)
      g = struct('lo', r.lo, 'hi', r.hi - 1, 'bounds', [r.lo; r.hi - 1], 'shape', r.hi - r.lo, ...
                 'resolution', r.resolution, 'image_mip', r.image_mip, 'segmentation_mip', r.segmentation_mip);
    end

    % Ids as uint64: uint64 as is; other integer-valued, non-negative numeric or logical
    % arrays converted.
    function v = ids_arg(v, what)
      if isa(v, 'uint64') && isreal(v) && ~issparse(v)
        return;
      end
      if islogical(v)
        v = uint64(v);
        return;
      end
      if ~CloudVolume.is_int_array(v) || any(v(:) < 0)
        error('cloudvolume:invalidArgument', '%s must be non-negative integer ids (uint64 beyond 2^53)', what);
      end
      v = uint64(v);
    end

    function tf = logical_arg(v, name)
      if ~(islogical(v) || isnumeric(v)) || ~isscalar(v) || ~isreal(v) || ~(v == 0 || v == 1)
        error('cloudvolume:invalidArgument', '''%s'' must be true or false', name);
      end
      tf = logical(v);
    end

    % Name-value options of a static method: a struct of defaults overridden by the names
    % given (case-insensitive, underscores ignored), each one of `names` (lowercase).
    function o = static_options(what, args, names, o)
      if mod(numel(args), 2) ~= 0
        error('cloudvolume:invalidArgument', '%s: options come in name-value pairs', what);
      end
      for i = 1:2:numel(args)
        name = args{i};
        if isa(name, 'string') && isscalar(name)
          name = char(name);
        end
        if ischar(name) && size(name, 1) == 1
          name = strrep(lower(name), '_', '');
        end
        if ~ischar(name) || ~any(strcmp(name, names))
          error('cloudvolume:invalidArgument', '%s takes the options %s', what, strjoin(names, ', '));
        end
        o.(name) = args{i + 1};
      end
    end

    function [grey, seg, alpha, outline] = overlay_args(what, grey, seg, opts)
      o = CloudVolume.static_options(what, opts, {'alpha', 'outline'}, struct('alpha', 0.5, 'outline', 0));
      if ~isa(grey, 'uint8') || ~ismatrix(grey) || ~isreal(grey) || issparse(grey)
        error('cloudvolume:invalidArgument', ['%s: the greyscale picture must be an x-y uint8 array (got %s ' ...
              'of size %s); convert it first, e.g. uint8(grey)'], what, class(grey), mat2str(size(grey)));
      end
      seg = CloudVolume.ids_arg(seg, sprintf('%s: the segmentation', what));
      if ~isequal(size(seg), size(grey))
        error('cloudvolume:invalidArgument', '%s: the segmentation is %s but the picture %s', what, ...
              mat2str(size(seg)), mat2str(size(grey)));
      end
      alpha = o.alpha;
      if ~isnumeric(alpha) || ~isreal(alpha) || ~isscalar(alpha)
        error('cloudvolume:invalidArgument', '%s: ''Alpha'' must be a number in [0, 1]', what);
      end
      alpha = double(alpha);
      outline = o.outline;
      if ~CloudVolume.is_int_array(outline) || ~isscalar(outline) || outline < 0
        error('cloudvolume:invalidArgument', '%s: ''Outline'' must be an integer >= 0 (pixels)', what);
      end
      outline = double(outline);
    end

    function id = open_or_create(cloudpath, info_json, json, opts)
      overwrite = isfield(opts, 'overwrite') && isequal(opts.overwrite, true);
      if overwrite || ~CloudVolume.call_mex('file_exists', cloudpath, json, 'info')
        id = CloudVolume.call_mex('create', cloudpath, info_json, json);
        return;
      end
      id = CloudVolume.call_mex('open', cloudpath, json);
      try
        stored = CloudVolume.call_mex('info', id);
        same = isequal(jsondecode(stored), jsondecode(info_json));
      catch err
        cloudvolume_mex('free', id);
        rethrow(err);
      end
      if ~same
        cloudvolume_mex('free', id);
        error('cloudvolume:invalidArgument', ['%s already has an info that differs from the ''info'' option; ' ...
              'open it without ''info'', pass ''overwrite'', true to replace it, or write elsewhere'], cloudpath);
      end
    end

    function [json, mip, autocrop, info, opts] = parse_options(args)
      if mod(numel(args), 2) ~= 0
        error('cloudvolume:invalidArgument', 'options come in name-value pairs (got %d arguments)', numel(args));
      end
      mip = 0;
      autocrop = false;
      info = [];
      opts = struct();
      names = {};
      values = {};
      bools = {'bounded', 'fill_missing', 'non_aligned_writes', 'delete_black_uploads', 'overwrite', 'autocrop', ...
               'agglomerate', 'use_https'};
      for i = 1:2:numel(args)
        name = args{i};
        if isa(name, 'string') && isscalar(name)
          name = char(name);
        end
        if ~ischar(name) || isempty(name) || size(name, 1) ~= 1
          error('cloudvolume:invalidArgument', 'option names must be text; argument %d is a %s', i + 1, class(name));
        end
        name = lower(name);
        v = args{i + 1};
        if isa(v, 'string') && isscalar(v)
          v = char(v);
        end
        if any(strcmp(name, bools)) && (isnumeric(v) || islogical(v)) && isscalar(v) && isreal(v) && (v == 0 || v == 1)
          v = logical(v);
        end
        if isvarname(name)
          opts.(name) = v;
        end
        switch name
          case 'mip'
            if ~CloudVolume.is_int_array(v) || ~isscalar(v) || v < 0
              error('cloudvolume:invalidArgument', 'option ''mip'' must be an integer >= 0');
            end
            mip = double(v);
          case 'autocrop'
            if ~islogical(v) || ~isscalar(v)
              error('cloudvolume:invalidArgument', 'option ''autocrop'' must be true or false');
            end
            autocrop = v;
            continue;
          case 'info'
            info = v;
            continue;
          case {'cdn_cache', 'progress'}
            continue;   % cloud-volume's; nothing to do here
        end
        k = find(strcmp(names, name), 1);
        if isempty(k)
          k = numel(names) + 1;
        end
        names{k} = name;
        values{k} = CloudVolume.json_value(name, v);
      end
      parts = cell(1, numel(names));
      for k = 1:numel(names)
        parts{k} = sprintf('"%s":%s', CloudVolume.json_escape(names{k}), values{k});
      end
      json = ['{', strjoin(parts, ','), '}'];
    end

    function s = json_value(name, v)
      if ischar(v) && (isempty(v) || size(v, 1) == 1)
        s = ['"', CloudVolume.json_escape(v), '"'];
      elseif isstruct(v) && isscalar(v)
        s = jsonencode(v);   % an object: e.g. the BOSS's secrets {protocol, host, token}
      elseif isempty(v) && (isnumeric(v) || iscell(v))
        s = 'null';
      elseif islogical(v) && isscalar(v)
        if v
          s = 'true';
        else
          s = 'false';
        end
      elseif isnumeric(v) && isscalar(v) && isreal(v)
        if isinteger(v)
          s = sprintf('%d', v);
        elseif ~isfinite(v)
          error('cloudvolume:invalidArgument', 'option ''%s'' must be finite', name);
        elseif v == fix(v) && abs(v) < 2^53
          s = sprintf('%d', v);
        else
          s = sprintf('%.17g', v);
        end
      else
        error('cloudvolume:invalidArgument', ...
              'option ''%s'' must be a logical, a real scalar, text, a struct or []; got a %s of size %s', name, class(v), ...
              mat2str(size(v)));
      end
    end

    function s = json_escape(s)
      s = strrep(s, '\', '\\');
      s = strrep(s, '"', '\"');
      ctrl = find(double(s) < 32);
      for k = numel(ctrl):-1:1
        i = ctrl(k);
        s = [s(1:i - 1), sprintf('\\u%04x', double(s(i))), s(i + 1:end)];
      end
    end

    % Services keep no info file (dvid://, boss://): 'info' goes to the library's create.
    function tf = is_service(cloudpath)
      tf = any(strncmpi(cloudpath, {'dvid://', 'boss://'}, 7));
    end

    function s = text_arg(s, what)
      if isa(s, 'string') && isscalar(s)
        s = char(s);
      end
      if ~ischar(s) || isempty(s) || size(s, 1) ~= 1
        error('cloudvolume:invalidArgument', '%s must be text (a character vector)', what);
      end
    end

    function c = class_of(data_type)
      switch data_type
        case 'float32'
          c = 'single';
        case 'float64'
          c = 'double';
        otherwise
          c = data_type;
      end
    end

    function tf = is_int_array(v)
      tf = (isnumeric(v) && isreal(v) && ~issparse(v) && all(isfinite(v(:))) && all(v(:) == fix(v(:))));
    end

    function p = point_arg(p, what)
      if ~CloudVolume.is_int_array(p) || numel(p) ~= 3
        error('cloudvolume:invalidArgument', '%s must be 3 integers (x, y, z)', what);
      end
      p = double(reshape(p, 1, 3));
    end

    % A range of integers: a scalar or a:b with step 1.
    function check_range(r, what)
      if ~isnumeric(r) || ~isreal(r) || issparse(r)
        if islogical(r)
          kind = 'a logical mask';
        elseif ischar(r)
          kind = sprintf('the text ''%s''', r);
        else
          kind = sprintf('a %s', class(r));
        end
        error('cloudvolume:invalidArgument', ...
              '%s must be a range of integers such as 0:63, a scalar, or '':''; got %s', what, kind);
      end
      if ~isempty(r) && ~isvector(r)
        error('cloudvolume:invalidArgument', '%s must be a vector (a range such as 0:63)', what);
      end
      if ~CloudVolume.is_int_array(r)
        error('cloudvolume:invalidArgument', '%s must hold integers (absolute voxel coordinates)', what);
      end
      if numel(r) > 1 && any(diff(double(r(:))) ~= 1)
        error('cloudvolume:invalidArgument', ...
              '%s must be contiguous and increasing (a:b with step 1); got %s', what, CloudVolume.show_range(r));
      end
    end

    function s = show_range(r)
      if numel(r) <= 8
        s = mat2str(double(r(:).'));
      else
        s = sprintf('[%s ... %s] (%d values)', num2str(double(r(1))), num2str(double(r(end))), numel(r));
      end
    end

    function s = describe_subs(subs)
      if ischar(subs)
        s = subs;
      else
        s = '(...)';
      end
    end

    function raise_clean(err)
      id = err.identifier;
      msg = err.message;
      if strncmp(id, 'cloudvolume:', 12)
        prefix = 'cloudvolume_mex: ';
        if strncmp(msg, prefix, numel(prefix))
          msg = msg(numel(prefix) + 1:end);
        end
        error(id, '%s', msg);
      end
      if any(strcmp(id, {'MATLAB:UndefinedFunction', 'Octave:undefined-function'})) && ...
         ~isempty(strfind(msg, 'cloudvolume_mex'))
        error('cloudvolume:notBuilt', ['the MEX file cloudvolume_mex is not built for this ' ...
              'MATLAB/Octave: run build_cloudvolume in %s'], fileparts(which('CloudVolume')));
      end
      rethrow(err);
    end
  end
end
