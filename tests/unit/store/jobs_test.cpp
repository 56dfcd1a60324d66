// Jobs: priorities, progress, cancel, and recovery after a crash (the store reopened while
// jobs were running).
#include "store_fixture.h"

using namespace tumorlab;
using namespace tumorlab::store;
using namespace tumorlab::store::testing;
using tumorlab::testing::TempDir;

namespace {
NewJob job(JobType type, JobPriority prio, bool restartable = true) {
  NewJob j;
  j.type = type;
  j.priority = prio;
  j.restartable = restartable;
  j.params_json = R"({"b":1,"a":"x"})";
  return j;
}
}  // namespace

TEST(StoreJobs, ClaimedByPriorityThenAge) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  s.write([](WriteTxn& t) {
    const Job train = t.enqueue_job(job(JobType::Train, JobPriority::Train));
    const Job batch = t.enqueue_job(job(JobType::PredictBatch, JobPriority::Batch));
    const Job pre1 = t.enqueue_job(job(JobType::Presegment, JobPriority::Presegment));
    const Job pre2 = t.enqueue_job(job(JobType::Presegment, JobPriority::Presegment));
    const Job inter = t.enqueue_job(job(JobType::Presegment, JobPriority::Interactive));
    EXPECT_EQ(train.params_json, R"({"a":"x","b":1})");  // canonical JSON
    EXPECT_EQ(train.state, JobState::Queued);
    EXPECT_EQ(t.count_jobs(JobState::Queued), 5);
    EXPECT_EQ(t.count_jobs(JobState::Queued, {JobType::Train}), 1);
    EXPECT_EQ(t.count_jobs(JobState::Queued, {JobType::Presegment, JobType::PredictBatch}), 4);
    EXPECT_EQ(t.count_jobs(JobState::Queued, {JobType::Export}), 0);
    // Only training jobs, for a training worker.
    EXPECT_EQ(t.claim_next_job({JobType::Train})->id, train.id);
    EXPECT_EQ(t.claim_next_job()->id, inter.id);
    EXPECT_EQ(t.claim_next_job()->id, pre1.id);
    EXPECT_EQ(t.claim_next_job()->id, pre2.id);
    const Job b = *t.claim_next_job();
    EXPECT_EQ(b.id, batch.id);
    EXPECT_EQ(b.state, JobState::Running);
    EXPECT_EQ(b.attempts, 1);
    EXPECT_TRUE(b.started_ms);
    EXPECT_FALSE(t.claim_next_job());
    EXPECT_STORE_ERROR(t.enqueue_job([] {
      NewJob j;
      j.params_json = "not json";
      return j;
    }()),
                       BadArgument);
  });
}

TEST(StoreJobs, ProgressCancelAndFinish) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  s.write([](WriteTxn& t) {
    const Job queued = t.enqueue_job(job(JobType::Export, JobPriority::Batch));
    const Job running = t.enqueue_job(job(JobType::Presegment, JobPriority::Interactive));
    ASSERT_EQ(t.claim_next_job()->id, running.id);
    Job p = t.update_job_progress(running.id, 1.7, "window 3/4");
    EXPECT_DOUBLE_EQ(p.progress, 1.0);  // clamped
    EXPECT_EQ(p.message, "window 3/4");
    EXPECT_FALSE(p.cancel_requested);
    // Cancelling a queued job ends it; a running one is asked to stop.
    EXPECT_EQ(t.request_job_cancel(queued.id).state, JobState::Cancelled);
    EXPECT_TRUE(t.request_job_cancel(running.id).cancel_requested);
    EXPECT_TRUE(t.update_job_progress(running.id, 0.9, "stopping").cancel_requested);
    const Job f = t.finish_job(running.id, JobState::Cancelled);
    EXPECT_EQ(f.state, JobState::Cancelled);
    EXPECT_TRUE(f.finished_ms);
    EXPECT_STORE_ERROR(t.finish_job(running.id, JobState::Succeeded), Conflict);
    EXPECT_STORE_ERROR(t.update_job_progress(running.id, 0.5, ""), Conflict);
    EXPECT_STORE_ERROR(t.finish_job(running.id, JobState::Running), BadArgument);

    const Job ok = t.enqueue_job(job(JobType::Import, JobPriority::Batch));
    t.claim_next_job();
    const Job done = t.finish_job(ok.id, JobState::Succeeded, "", R"({"cases":3})");
    EXPECT_DOUBLE_EQ(done.progress, 1.0);
    EXPECT_EQ(done.result_json, R"({"cases":3})");
    const Job bad = t.enqueue_job(job(JobType::Import, JobPriority::Batch));
    t.claim_next_job();
    EXPECT_EQ(t.finish_job(bad.id, JobState::Failed, "corrupt file x.nii.gz").error, "corrupt file x.nii.gz");
    JobFilter failed;
    failed.state = JobState::Failed;
    EXPECT_EQ(t.list_jobs(failed).size(), 1u);
    EXPECT_STORE_ERROR(t.get_job(9999), NotFound);
  });
}

TEST(StoreJobs, RunningJobsAreRequeuedOrFailedAfterReopen) {
  TempDir dir;
  Id restartable = 0, one_shot = 0, cancelling = 0, queued = 0, finished = 0;
  {
    StoreOptions o = options_for(dir.path());
    o.recover_jobs = true;
    Store s = Store::open(o);
    // A second server on the same folder is refused while the first runs.
    EXPECT_STORE_ERROR(Store::open(o), Unavailable);
    s.write([&](WriteTxn& t) {
      restartable = t.enqueue_job(job(JobType::Presegment, JobPriority::Presegment)).id;
      one_shot = t.enqueue_job(job(JobType::Export, JobPriority::Presegment, false)).id;
      cancelling = t.enqueue_job(job(JobType::Train, JobPriority::Presegment)).id;
      finished = t.enqueue_job(job(JobType::Import, JobPriority::Presegment)).id;
      for (int i = 0; i < 4; ++i) t.claim_next_job();
      queued = t.enqueue_job(job(JobType::PredictBatch, JobPriority::Batch)).id;
      t.update_job_progress(restartable, 0.4, "half way");
      t.request_job_cancel(cancelling);
      t.finish_job(finished, JobState::Succeeded);
    });
    // The process "crashes": the store goes away with three jobs running.
  }
  StoreOptions o = options_for(dir.path());
  o.recover_jobs = true;
  Store s = Store::open(o);
  EXPECT_EQ(s.open_report().jobs_requeued, 1);
  EXPECT_EQ(s.open_report().jobs_failed, 2);
  s.read([&](ReadTxn& t) {
    const Job r = t.get_job(restartable);
    EXPECT_EQ(r.state, JobState::Queued);
    EXPECT_DOUBLE_EQ(r.progress, 0);
    EXPECT_FALSE(r.started_ms);
    EXPECT_EQ(r.attempts, 1);
    EXPECT_NE(r.message.find("re-queued"), std::string::npos);
    const Job f = t.get_job(one_shot);
    EXPECT_EQ(f.state, JobState::Failed);
    EXPECT_NE(f.error.find("interrupted"), std::string::npos);
    EXPECT_TRUE(f.finished_ms);
    EXPECT_EQ(t.get_job(cancelling).state, JobState::Cancelled);
    EXPECT_EQ(t.get_job(queued).state, JobState::Queued);
    EXPECT_EQ(t.get_job(finished).state, JobState::Succeeded);
    EXPECT_EQ(t.count_jobs(JobState::Running), 0);
    AuditQuery q;
    q.action = "job.recover";
    EXPECT_EQ(t.list_audit(q).size(), 3u);
  });
  // The re-queued job runs again, before the batch job.
  const Job again = *s.write([](WriteTxn& t) { return t.claim_next_job(); });
  EXPECT_EQ(again.id, restartable);
  EXPECT_EQ(again.attempts, 2);
  EXPECT_TRUE(s.verify_audit().intact);
}

TEST(StoreJobs, ToolsWithoutRecoveryLeaveRunningJobsAlone) {
  TempDir dir;
  StoreOptions server = options_for(dir.path());
  server.recover_jobs = true;
  Store s = Store::open(server);
  const Job j = s.write([](WriteTxn& t) {
    t.enqueue_job(job(JobType::Train, JobPriority::Train));
    return *t.claim_next_job();
  });
  // `tumorlab user ...` opens the same folder while the server runs.
  Store tool = Store::open(options_for(dir.path()));
  EXPECT_EQ(tool.open_report().jobs_requeued, 0);
  EXPECT_EQ(s.read([&](ReadTxn& t) { return t.get_job(j.id).state; }), JobState::Running);
}
