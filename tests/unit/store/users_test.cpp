// Users, passwords, the initial admin, sessions and login throttling.
#include <cstdlib>

#include "store_fixture.h"

using namespace tumorlab;
using namespace tumorlab::store;
using namespace tumorlab::store::testing;
using tumorlab::testing::TempDir;

TEST(StoreUsers, PasswordHashIsArgon2idAndVerifies) {
  const std::string h = hash_password("correct horse");
  EXPECT_EQ(h.rfind("$argon2id$", 0), 0u) << h;
  EXPECT_TRUE(verify_password(h, "correct horse"));
  EXPECT_FALSE(verify_password(h, "correct hors"));
  EXPECT_NE(hash_password("correct horse"), h);  // salted
  EXPECT_STORE_ERROR(hash_password("short"), BadArgument);
}

TEST(StoreUsers, CreateAuthenticateChangePasswordDisable) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  const User u = s.create_user("alice", Role::Annotator, "alice-password-1");
  EXPECT_EQ(u.username, "alice");
  EXPECT_EQ(u.role, Role::Annotator);
  EXPECT_FALSE(u.disabled);

  auto ok = s.authenticate("alice", "alice-password-1");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->id, u.id);
  EXPECT_FALSE(s.authenticate("alice", "wrong-password"));
  EXPECT_FALSE(s.authenticate("nobody", "alice-password-1"));
  // The plain password is nowhere in the database.
  EXPECT_EQ(raw_scalar(dir.path(), "SELECT count(*) FROM users WHERE password_hash LIKE '%alice-password-1%'"), "0");

  EXPECT_STORE_ERROR(s.create_user("alice", Role::Admin, "another-password"), Conflict);
  EXPECT_STORE_ERROR(s.create_user("bad name", Role::Admin, "another-password"), BadArgument);
  EXPECT_STORE_ERROR(s.create_user("", Role::Admin, "another-password"), BadArgument);

  // A new password ends existing sessions; the old password stops working.
  const NewSession sess = s.write([&](WriteTxn& t) { return t.create_session(u.id, 60'000); });
  EXPECT_TRUE(s.read([&](ReadTxn& t) { return t.find_session(sess.token).has_value(); }));
  s.change_password("alice", "alice-password-2");
  EXPECT_FALSE(s.read([&](ReadTxn& t) { return t.find_session(sess.token).has_value(); }));
  EXPECT_FALSE(s.authenticate("alice", "alice-password-1"));
  EXPECT_TRUE(s.authenticate("alice", "alice-password-2"));
  EXPECT_STORE_ERROR(s.change_password("nobody", "whatever-pass"), NotFound);

  // Disabled: cannot log in, sessions gone, cannot get a new one.
  const NewSession sess2 = s.write([&](WriteTxn& t) { return t.create_session(u.id, 60'000); });
  s.write([&](WriteTxn& t) { t.set_user_disabled(u.id, true); });
  EXPECT_FALSE(s.authenticate("alice", "alice-password-2"));
  EXPECT_FALSE(s.read([&](ReadTxn& t) { return t.find_session(sess2.token).has_value(); }));
  EXPECT_STORE_ERROR(s.write([&](WriteTxn& t) { t.create_session(u.id, 1000); }), Forbidden);
  s.write([&](WriteTxn& t) { t.set_user_disabled(u.id, false); });
  EXPECT_TRUE(s.authenticate("alice", "alice-password-2"));

  s.write([&](WriteTxn& t) { t.set_user_role(u.id, Role::Reviewer); });
  EXPECT_EQ(s.read([&](ReadTxn& t) { return t.get_user(u.id).role; }), Role::Reviewer);
  EXPECT_STORE_ERROR(s.read([](ReadTxn& t) { return t.get_user(4242); }), NotFound);
}

TEST(StoreUsers, InitialAdminFromEnvironmentOnlyOnce) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  ::setenv("TUMORLAB_ADMIN_PASSWORD", "env-admin-password", 1);
  const InitialAdmin a = s.ensure_initial_admin();
  ::unsetenv("TUMORLAB_ADMIN_PASSWORD");
  EXPECT_TRUE(a.created);
  EXPECT_EQ(a.username, "admin");
  EXPECT_TRUE(a.generated_password.empty());
  auto u = s.authenticate("admin", "env-admin-password");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->role, Role::Admin);
  const InitialAdmin again = s.ensure_initial_admin();
  EXPECT_FALSE(again.created);
  EXPECT_TRUE(again.generated_password.empty());
  // The bootstrap is in the audit trail, without the password.
  auto rows = s.read([](ReadTxn& t) { return t.list_audit(AuditQuery{}); });
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].action, "admin.bootstrap");
  EXPECT_EQ(rows[0].detail_json.find("env-admin-password"), std::string::npos);
}

TEST(StoreUsers, InitialAdminGeneratedPasswordWorks) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  ::unsetenv("TUMORLAB_ADMIN_PASSWORD");
  const InitialAdmin a = s.ensure_initial_admin();
  EXPECT_TRUE(a.created);
  EXPECT_EQ(a.generated_password.size(), 20u);
  EXPECT_TRUE(s.authenticate("admin", a.generated_password));
}

TEST(StoreUsers, InitialAdminRefusesShortEnvironmentPassword) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  ::setenv("TUMORLAB_ADMIN_PASSWORD", "short", 1);
  const std::string msg = EXPECT_STORE_ERROR(s.ensure_initial_admin(), BadArgument);
  ::unsetenv("TUMORLAB_ADMIN_PASSWORD");
  EXPECT_NE(msg.find("TUMORLAB_ADMIN_PASSWORD"), std::string::npos);
  EXPECT_TRUE(s.read([](ReadTxn& t) { return t.list_users(); }).empty());
}

TEST(StoreSessions, ExpireAtTheirTimeAndStoreOnlyATokenHash) {
  TempDir dir;
  TestClock clock;
  Store s = Store::open(options_for(dir.path(), &clock));
  const User u = s.create_user("bob", Role::Reviewer, "bob-password");
  const TimeMs t0 = clock.now.load();
  const NewSession ns = s.write([&](WriteTxn& t) { return t.create_session(u.id, 30'000); });
  EXPECT_EQ(ns.session.expires_ms, t0 + 30'000);
  EXPECT_EQ(ns.token.size(), 43u);
  EXPECT_NE(ns.session.csrf_token, ns.token);
  EXPECT_EQ(raw_scalar(dir.path(), "SELECT count(*) FROM sessions WHERE token_hash = '" + ns.token + "'"), "0");
  EXPECT_EQ(raw_scalar(dir.path(), "SELECT token_hash FROM sessions"), sha256_hex(ns.token));

  auto found = s.read([&](ReadTxn& t) { return t.find_session(ns.token); });
  ASSERT_TRUE(found);
  EXPECT_EQ(found->user.username, "bob");
  EXPECT_TRUE(constant_time_equal(found->session.csrf_token, ns.session.csrf_token));
  EXPECT_FALSE(s.read([&](ReadTxn& t) { return t.find_session(ns.token + "x"); }));
  EXPECT_FALSE(s.read([&](ReadTxn& t) { return t.find_session(""); }));

  clock.now = t0 + 29'999;
  EXPECT_TRUE(s.read([&](ReadTxn& t) { return t.find_session(ns.token); }));
  clock.now = t0 + 30'000;
  EXPECT_FALSE(s.read([&](ReadTxn& t) { return t.find_session(ns.token); }));
  EXPECT_EQ(s.write([](WriteTxn& t) { return t.purge_expired_sessions(); }), 1);

  // Logout.
  const NewSession ns2 = s.write([&](WriteTxn& t) { return t.create_session(u.id, 30'000); });
  s.write([&](WriteTxn& t) { t.delete_session(ns2.token); });
  EXPECT_FALSE(s.read([&](ReadTxn& t) { return t.find_session(ns2.token); }));
}

TEST(StoreThrottle, BackoffAfterFiveFailuresPerUserAndPerAddress) {
  TempDir dir;
  TestClock clock;
  Store s = Store::open(options_for(dir.path(), &clock));
  auto wait = [&](const char* user, const char* ip) {
    return s.read([&](ReadTxn& t) { return t.login_retry_after_ms(user, ip); });
  };
  auto fail = [&](const char* user, const char* ip) {
    s.write([&](WriteTxn& t) { t.record_login_failure(user, ip); });
  };
  for (int i = 0; i < 5; ++i) fail("carol", "10.0.0.1");
  EXPECT_EQ(wait("carol", "10.0.0.1"), 0);
  fail("carol", "10.0.0.1");  // 6th
  EXPECT_EQ(wait("carol", "10.0.0.1"), 1000);
  EXPECT_EQ(wait("carol", "10.0.0.9"), 1000);  // the account is throttled from anywhere
  EXPECT_EQ(wait("dave", "10.0.0.1"), 1000);   // and the address for any account
  EXPECT_EQ(wait("dave", "10.0.0.9"), 0);
  fail("carol", "10.0.0.1");  // 7th: doubles
  EXPECT_EQ(wait("carol", "10.0.0.2"), 2000);
  clock.now += 1500;
  EXPECT_EQ(wait("carol", "10.0.0.2"), 500);
  clock.now += 500;
  EXPECT_EQ(wait("carol", "10.0.0.2"), 0);
  for (int i = 0; i < 30; ++i) fail("carol", "10.0.0.1");
  EXPECT_EQ(wait("carol", "10.0.0.2"), 15 * 60 * 1000);  // capped
  // Success clears the account, not the address.
  s.write([&](WriteTxn& t) { t.clear_login_failures("carol", "10.0.0.1"); });
  EXPECT_EQ(wait("carol", "10.0.0.2"), 0);
  EXPECT_EQ(wait("erin", "10.0.0.1"), 15 * 60 * 1000);
  // Failures older than a day are forgotten on the next failure.
  clock.now += 25LL * 3600 * 1000;
  fail("frank", "10.0.0.1");
  EXPECT_EQ(wait("frank", "10.0.0.1"), 0);
}
