function out = build_cloudvolume(varargin)
%BUILD_CLOUDVOLUME  Build the MEX file of the CloudVolume class (MATLAB or GNU Octave).
%
%   build_cloudvolume()
%   build_cloudvolume(Name, Value, ...)
%   path = build_cloudvolume(...)        % the MEX file built
%
%   Compiles private/cloudvolume_mex.c and links the Rust library statically into it, so the
%   MEX file is self-contained. MATLAB runs `mex`, Octave `mkoctfile --mex`; the two outputs
%   (.mexa64/.mexmaci64/.mexw64 and .mex) can sit side by side.
%
%   Options:
%     'lib'      the static library (libcloudvolume.a; cloudvolume.lib with MSVC). Default:
%                $CLOUDVOLUME_STATIC_LIB, else <repo>/target/release, else <repo>/target/debug.
%                When none exists and cargo is on the PATH, `cargo build --release --lib`
%                builds it first.
%     'include'  the folder holding cloudvolume.h (default <repo>/include)
%     'libs'     native libraries the static library needs, as linker flags (cell array of
%                char); default per platform, from `cargo rustc --lib --crate-type staticlib
%                -- --print native-static-libs`
%     'outdir'   where the MEX file goes (default <this folder>/private, where the class
%                looks for it)
%     'debug'    true: compile with -g and without optimisation (default false)
%     'verbose'  true: show the compiler's command lines (default false)
%
%   Example (from the repository root, after `cargo build --release`):
%     addpath bindings/matlab
%     build_cloudvolume
%     vol = CloudVolume('file:///data/layer');

here = fileparts(mfilename('fullpath'));
repo = fileparts(fileparts(here));
is_octave = exist('OCTAVE_VERSION', 'builtin') > 0;

opt = struct('lib', '', 'include', fullfile(repo, 'include'), 'libs', {{}}, ...
             'outdir', fullfile(here, 'private'), 'debug', false, 'verbose', false);
if mod(numel(varargin), 2) ~= 0
  error('cloudvolume:invalidArgument', 'build_cloudvolume: options come in name-value pairs');
end
for i = 1:2:numel(varargin)
  name = lower(char(varargin{i}));
  if ~isfield(opt, name)
    error('cloudvolume:invalidArgument', 'build_cloudvolume: unknown option ''%s''', name);
  end
  opt.(name) = varargin{i + 1};
end

% The static library.
lib = char(opt.lib);
if isempty(lib)
  lib = getenv('CLOUDVOLUME_STATIC_LIB');
end
if ispc
  libname = 'cloudvolume.lib';
else
  libname = 'libcloudvolume.a';
end
if isempty(lib)
  candidates = {fullfile(repo, 'target', 'release', libname), fullfile(repo, 'target', 'debug', libname)};
  for k = 1:numel(candidates)
    if exist(candidates{k}, 'file')
      lib = candidates{k};
      break;
    end
  end
  if isempty(lib)
    lib = candidates{1};
    fprintf('build_cloudvolume: %s not found; running cargo build --release --lib\n', lib);
    % The crate's default feature (the CLI's HDF5 output) needs the system libhdf5 to build.
    features = '';
    if system('pkg-config --exists hdf5') ~= 0
        features = ' --no-default-features';
    end
    status = system(sprintf('cd "%s" && cargo build --release --lib%s', repo, features));
    if status ~= 0 || ~exist(lib, 'file')
      error('cloudvolume:notBuilt', ['build_cloudvolume: could not build %s (install Rust from ' ...
            'https://rustup.rs and run `cargo build --release` in %s)'], lib, repo);
    end
  end
end
if ~exist(lib, 'file')
  error('cloudvolume:notBuilt', 'build_cloudvolume: no static library at %s', lib);
end
if ~exist(fullfile(opt.include, 'cloudvolume.h'), 'file')
  error('cloudvolume:notBuilt', 'build_cloudvolume: no cloudvolume.h in %s', opt.include);
end

% Native libraries of the Rust standard library, per platform.
libs = opt.libs;
if isempty(libs)
  if ispc
    libs = {'-lkernel32', '-ladvapi32', '-lntdll', '-luserenv', '-lws2_32', '-lbcrypt', '-lmsvcrt'};
  elseif ismac
    libs = {'-lSystem', '-lc', '-lm'};
  else
    libs = {'-lgcc_s', '-lutil', '-lrt', '-lpthread', '-lm', '-ldl', '-lc'};
  end
end

src = fullfile(here, 'private', 'cloudvolume_mex.c');
if ~exist(opt.outdir, 'dir')
  mkdir(opt.outdir);
end

if is_octave
  target = fullfile(opt.outdir, 'cloudvolume_mex.mex');
  args = {'--mex', ['-I', opt.include], '-o', target, src, lib, libs{:}};
  if opt.debug
    args = [args, {'-g', '-O0'}];
  end
  if ~ismac && ~ispc
    % Keep the library's symbols (libjpeg-turbo, zstd, ...) private to the MEX file.
    args{end + 1} = '-Wl,--exclude-libs,ALL';
  end
  if opt.verbose
    args = [{'-v'}, args];
  end
  % A MEX file that is loaded (locked while volumes are open) cannot be replaced safely.
  if exist('cloudvolume_mex', 'file') == 3 && CloudVolume_live_handles() > 0
    error('cloudvolume:invalidArgument', 'build_cloudvolume: delete every CloudVolume first');
  end
  clear('cloudvolume_mex');
  [output, status] = mkoctfile(args{:});
  if opt.verbose && ~isempty(output)
    fprintf('%s\n', output);
  end
  if status ~= 0
    error('cloudvolume:notBuilt', 'build_cloudvolume: mkoctfile failed:\n%s', output);
  end
else
  target = fullfile(opt.outdir, ['cloudvolume_mex.', mexext]);
  args = {['-I', opt.include], '-outdir', opt.outdir, '-output', 'cloudvolume_mex', src, lib, libs{:}};
  if opt.debug
    args = [{'-g'}, args];
  else
    args = [{'-O'}, args];
  end
  if ~ismac && ~ispc
    args{end + 1} = 'LDFLAGS=$LDFLAGS -Wl,--exclude-libs,ALL';
  end
  if opt.verbose
    args = [{'-v'}, args];
  else
    args = [{'-silent'}, args];
  end
  clear('cloudvolume_mex');
  mex(args{:});
end
fprintf('build_cloudvolume: built %s\n', target);
if nargout > 0
  out = target;
end
end

function n = CloudVolume_live_handles()
% Live handles of the loaded MEX file (0 when it cannot tell).
n = 0;
try
  n = CloudVolume.live_handles();
catch
end
end
