#include "common/cli.hpp"

#include <cctype>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "common/log.hpp"
#include "common/util.hpp"

namespace zgrid::cli {

CLI::Option* add_duration(CLI::App& app, const std::string& name, Millis* out,
                          const std::string& description) {
  auto* opt = app.add_option_function<std::string>(
      name,
      [out, name](const std::string& s) {
        auto r = parse_duration(s);
        if (!r.ok()) throw CLI::ValidationError(name, r.status().message());
        *out = *r;
      },
      description);
  opt->default_str(format_duration(*out))->type_name("DURATION");
  return opt;
}

std::string env_name(const std::string& long_name, const std::string& prefix) {
  std::string s = prefix;
  for (char c : long_name) {
    if (c == '-')
      s += '_';
    else
      s += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return s;
}

namespace {
void collect_env(CLI::App& app, const std::string& prefix, std::vector<std::string>* out) {
  for (const CLI::Option* opt : app.get_options()) {
    for (const std::string& ln : opt->get_lnames()) {
      if (ln == "help" || ln == "config") continue;
      const char* v = std::getenv(env_name(ln, prefix).c_str());
      if (v == nullptr) continue;
      out->push_back("--" + ln + "=" + v);
    }
  }
}
}  // namespace

int parse(CLI::App& app, int argc, const char* const* argv, const std::string& env_prefix) {
  std::vector<std::string> args;
  if (!env_prefix.empty()) collect_env(app, env_prefix, &args);
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  // CLI11 wants the arguments reversed when given as a vector.
  std::vector<std::string> rev(args.rbegin(), args.rend());
  for (CLI::Option* opt : app.get_options()) {
    // Single-valued options keep the last value (env first, then argv);
    // repeatable options (vectors) keep every value.
    if (opt->get_items_expected_max() == 1 && opt->get_type_size_max() <= 1)
      opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  try {
    app.parse(rev);
  } catch (const CLI::CallForHelp& e) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
    for (char& c : what)
      if (c == '\n') c = ' ';
    std::cerr << app.get_name() << ": error: " << what << "\n";
    return 2;
  }
  return -1;
}

namespace {
std::atomic<bool>* g_stop_flag = nullptr;
std::atomic<std::uint64_t> g_hangups{0};  // lock-free: touched from a signal handler
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
}  // namespace

std::uint64_t hangups() {
  return g_hangups.load();
}

int setup_daemon(const std::string& program, const std::string& log_level,
                 const std::string& log_file, std::atomic<bool>* stop,
                 const std::string& log_format) {
  if (log_format != "text" && log_format != "json") {
    std::cerr << program << ": error: --log-format: expected text or json\n";
    return 2;
  }
  log::set_json(log_format == "json");
  log::Level lvl;
  if (!log::parse_level(log_level, &lvl)) {
    std::cerr << program << ": error: --log-level: expected debug, info, warn or error\n";
    return 2;
  }
  log::set_level(lvl);
  if (!log_file.empty() && !log::set_file(log_file)) {
    std::cerr << program << ": error: --log-file: cannot open " << log_file << "\n";
    return 2;
  }
  g_stop_flag = stop;
  std::signal(SIGTERM, [](int) { g_stop_flag->store(true); });
  std::signal(SIGINT, [](int) { g_stop_flag->store(true); });
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGHUP, [](int) {
    log::request_reopen();
    g_hangups.fetch_add(1);
  });
  return -1;
}

}  // namespace zgrid::cli
