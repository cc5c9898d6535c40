#include "services/registration.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>

#include "common/cli.hpp"
#include "common/service_spec.hpp"
#include "services/exec_bridge.hpp"
#include "services/plugin_host.hpp"

namespace zgrid::svc {

namespace fs = std::filesystem;

namespace {

Status bad(const std::string& path, const std::string& why) {
  return Status::InvalidArgument("service registration " + path + ": " + why);
}

std::string resolve(const fs::path& dir, const std::string& p) {
  fs::path x(p);
  return (x.is_absolute() ? x : dir / x).lexically_normal().string();
}

}  // namespace

Status register_file(const std::string& path, Registry& registry) {
  std::string name, version, library, program, config;
  std::vector<std::string> args, operations, env;
  int concurrency = 0, max_retries = -1;
  Millis task_timeout_ms = 0;
  bool sessions = false, pipeline = false;

  CLI::App app("service registration", path);
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.set_config("--registration", path, "", true);
  app.add_option("--name", name);
  app.add_option("--version", version);
  app.add_option("--library", library);
  app.add_option("--program", program);
  app.add_option("--args", args);
  app.add_option("--operations", operations)->delimiter(',');
  app.add_option("--concurrency", concurrency)->check(CLI::Range(0, 4096));
  cli::add_duration(app, "--task_timeout", &task_timeout_ms, "");
  app.add_option("--max_retries", max_retries)->check(CLI::Range(0, 1000));
  app.add_option("--env", env);
  app.add_option("--config", config);
  app.add_flag("--sessions", sessions);
  app.add_flag("--pipeline", pipeline);
  try {
    app.parse(std::vector<std::string>{});
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    return bad(path, what);
  }
  // CLI11's messages above name the key; so do the checks below.
  if (library.empty() == program.empty())
    return bad(path, "give exactly one of library and program");
  if (!name.empty() && !spec::valid_part(name))
    return bad(path, "key name: 1..64 of [A-Za-z0-9_.+-]");
  if (!version.empty() && !spec::valid_part(version))
    return bad(path, "key version: 1..64 of [A-Za-z0-9_.+-]");
  for (const auto& op : operations)
    if (!spec::valid_part(op)) return bad(path, "key operations: bad operation '" + op + "'");
  for (const auto& kv : env)
    if (kv.find('=') == std::string::npos || kv.front() == '=')
      return bad(path, "key env: expected NAME=value, got '" + kv + "'");
  if (!library.empty() && (!args.empty() || !env.empty()))
    return bad(path, "keys args and env are for programs, not libraries");
  if (!program.empty() && !config.empty())
    return bad(path, "key config is for libraries (a program reads its environment)");
  if (!library.empty() && pipeline)
    return bad(path, "key pipeline is for programs (the exec bridge's)");
  if (!library.empty() && sessions)
    return bad(path,
               "key sessions is for programs (a plug-in's descriptor says whether it keeps "
               "session state)");

  fs::path dir = fs::path(path).parent_path();
  ServiceInfo info;
  if (!library.empty()) {
    auto loaded = load_plugin(resolve(dir, library), config);
    if (!loaded.ok()) return bad(path, loaded.status().message());
    info = std::move(loaded).value();
    if (!version.empty() && version != info.version)
      return bad(path,
                 "key version: \"" + version + "\" but the library says \"" + info.version + "\"");
    if (!operations.empty()) {
      for (const auto& op : operations)
        if (!info.operations.empty() &&
            std::find(info.operations.begin(), info.operations.end(), op) == info.operations.end())
          return bad(path, "key operations: the library has no operation '" + op + "'");
      info.operations = operations;
    }
  } else {
    if (name.empty()) return bad(path, "key name is required for a program");
    ExecConfig c;
    c.program = resolve(dir, program);
    if (access(c.program.c_str(), X_OK) != 0)
      return bad(path, "key program: " + c.program + " is not an executable file");
    for (auto& a : args) c.args.push_back(a);
    c.env = env;
    c.label = spec::advertised(name, version.empty() ? "1" : version);
    c.sessions = sessions;
    c.pipeline = pipeline;
    info.sessions = sessions;
    info.make = exec_factory(std::move(c));
    info.version = version.empty() ? "1" : version;
    info.operations = operations;
  }
  if (!name.empty()) info.name = name;
  info.concurrency = concurrency;
  info.task_timeout_ms = task_timeout_ms;
  info.max_retries = max_retries;
  info.source = path;
  return registry.add(std::move(info));
}

Status register_dir(const std::string& dir, Registry& registry) {
  std::error_code ec;
  std::vector<std::string> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string ext = it->path().extension().string();
    if ((ext == ".toml" || ext == ".conf") && it->is_regular_file())
      files.push_back(it->path().string());
  }
  if (ec) return Status::InvalidArgument("--services-dir " + dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) ZG_RETURN_IF_ERROR(register_file(f, registry));
  return Status::OK();
}

Status register_library(const std::string& path, Registry& registry) {
  auto loaded = load_plugin(path, "");
  if (!loaded.ok()) return loaded.status();
  return registry.add(std::move(loaded).value());
}

}  // namespace zgrid::svc
