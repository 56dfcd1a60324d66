// tumorlab user add|list|passwd|disable|enable --data-dir DIR ...
#include <termios.h>
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "tumorlab/app/store_admin.h"
#include "tumorlab/cli/verbs.h"
#include "tumorlab/core/error.h"

namespace tumorlab::cli {
namespace {

std::string strip_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// One line from the terminal with echo off.
std::string prompt_hidden(std::FILE* tty_in, std::ostream& tty_out, const std::string& prompt) {
  tty_out << prompt << std::flush;
  const int fd = ::fileno(tty_in);
  termios old{};
  const bool have_termios = ::tcgetattr(fd, &old) == 0;
  if (have_termios) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  std::string line;
  char buf[1100];
  if (std::fgets(buf, sizeof buf, tty_in)) line = buf;
  if (have_termios) ::tcsetattr(fd, TCSAFLUSH, &old);
  tty_out << "\n";
  return strip_newline(line);
}

std::string read_password(bool from_stdin) {
  if (from_stdin) {
    std::string line;
    if (!std::getline(std::cin, line))
      throw Error(ErrorCode::BadArgument, "--password-stdin: no password on standard input");
    return strip_newline(line);
  }
  std::FILE* tty = std::fopen("/dev/tty", "r+");
  if (!tty)
    throw Error(ErrorCode::BadArgument,
                "no terminal to ask for the password: pass it on standard input with --password-stdin");
  std::ofstream out("/dev/tty");
  const std::string first = prompt_hidden(tty, out, "password: ");
  const std::string second = prompt_hidden(tty, out, "again: ");
  std::fclose(tty);
  if (first != second) throw Error(ErrorCode::BadArgument, "password: the two entries differ");
  return first;
}

}  // namespace

Run add_user(CLI::App& app) {
  struct Args {
    std::string dir, username, role = "annotator";
    bool password_stdin = false, json = false;
  };
  auto a = std::make_shared<Args>();
  app.require_subcommand(1);
  const char* footer =
      "Passwords: 8..1024 bytes, stored as Argon2id hashes. --password-stdin reads the first line of standard\n"
      "input; otherwise the password is asked twice on the terminal.\n\n"
      "Exit codes: 0 success, 2 bad input (unknown user, name taken, bad role or password), 3 environment,\n"
      "70 internal error";
  auto common = [&](CLI::App* sub, bool with_user) {
    sub->add_option("--data-dir", a->dir, "Data folder (holds tumorlab.db)")->required();
    if (with_user) sub->add_option("username", a->username, "User name (A-Z a-z 0-9 . _ -)")->required();
    sub->footer(footer);
  };
  CLI::App* add = app.add_subcommand("add", "Create a user account (creates the data folder if needed)");
  common(add, true);
  add->add_option("--role", a->role, "admin, reviewer or annotator")
      ->check(CLI::IsMember({"admin", "reviewer", "annotator"}))
      ->capture_default_str();
  add->add_flag("--password-stdin", a->password_stdin, "Read the password from standard input");
  CLI::App* list = app.add_subcommand("list", "List user accounts");
  common(list, false);
  list->add_flag("--json", a->json, "Print JSON");
  CLI::App* passwd = app.add_subcommand("passwd", "Set a user's password (ends their sessions)");
  common(passwd, true);
  passwd->add_flag("--password-stdin", a->password_stdin, "Read the password from standard input");
  CLI::App* disable = app.add_subcommand("disable", "Disable an account (ends its sessions; the data stays)");
  common(disable, true);
  CLI::App* enable = app.add_subcommand("enable", "Enable a disabled account again");
  common(enable, true);

  return [a, add, list, passwd, disable, enable] {
    if (add->parsed()) {
      const std::string pw = read_password(a->password_stdin);
      const store::User u = app::user_add(a->dir, a->username, a->role, pw);
      std::cout << "added user " << u.username << " (" << store::to_string(u.role) << ")\n";
    } else if (list->parsed()) {
      const auto users = app::user_list(a->dir);
      std::cout << (a->json ? app::users_to_json(users) : app::users_to_text(users));
    } else if (passwd->parsed()) {
      const std::string pw = read_password(a->password_stdin);
      app::user_passwd(a->dir, a->username, pw);
      std::cout << "password of " << a->username << " changed; their sessions ended\n";
    } else if (disable->parsed()) {
      app::user_set_disabled(a->dir, a->username, true);
      std::cout << "disabled " << a->username << "\n";
    } else if (enable->parsed()) {
      app::user_set_disabled(a->dir, a->username, false);
      std::cout << "enabled " << a->username << "\n";
    }
    return 0;
  };
}

}  // namespace tumorlab::cli
