// Import and export on a real data folder (SQLite in a temp dir) and on the real `tumorlab serve`
// over 127.0.0.1: NIfTI/PNG/DICOM import, de-identification (no PatientName/ID in the database,
// the audit trail, the server log or the exports; same patient -> same pseudonym), nnU-Net
// datasets with ground-truth revisions, duplicates stored once, bad uploads (4xx naming the file,
// nothing stored), the nnU-Net export round trip, label export as PNG, demo seeding of an empty
// data folder (and not on the second start).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "api_test_support.h"
#include "cli_run.h"
#include "server_process.h"
#include "test_support.h"
#include "tumorlab/app/exporter.h"
#include "tumorlab/app/importer.h"
#include "tumorlab/app/lab.h"
#include "tumorlab/io/archive.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/io/nnunet.h"
#include "tumorlab/store/store.h"

using namespace tumorlab;
using nlohmann::json;
using namespace tumorlab::testing;  // TempDir, ServeProcess, api_test_support.h
namespace fs = std::filesystem;

namespace {

const char* kPatientName = "Doe^Janeimport";
const char* kPatientId = "SECRET4711";

// Every byte of the data folder's database (and its WAL) and of the files under `dir`.
std::string all_bytes(const fs::path& dir) {
  std::string out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out += slurp_file(e.path());
  return out;
}

Geometry grid3d() {
  Geometry g;
  g.size = {12, 10, 5};
  g.spacing_mm = {1.0, 1.0, 2.0};
  g.origin_lps = {-6, -5, 0};
  return g;
}

Volume image3d(int16_t base) {
  Volume v(grid3d(), PixelType::Int16);
  auto* d = v.data<int16_t>();
  for (int64_t n = 0; n < v.voxel_count(); ++n) d[n] = static_cast<int16_t>(base + n % 7);
  return v;
}

LabelMap label3d(int i0) {
  LabelMap l(grid3d());
  for (int k = 1; k < 4; ++k)
    for (int j = 3; j < 6; ++j)
      for (int i = i0; i < i0 + 3; ++i) l.at(i, j, k) = 1;
  return l;
}

Volume image2d() {
  Geometry g;
  g.size = {20, 16, 1};
  g.spacing_mm = {1, 1, 1};
  Volume v(g, PixelType::UInt8);
  for (int64_t n = 0; n < v.voxel_count(); ++n) v.data<uint8_t>()[n] = static_cast<uint8_t>(n % 200);
  return v;
}

// A small CT series written with DCMTK: `slices` slices 8x8, identified by kPatientName/kPatientId.
void write_dicom_series(const fs::path& dir, const std::string& study_uid, int series_number, int slices) {
  fs::create_directories(dir);
  char series_uid[100];
  dcmGenerateUniqueIdentifier(series_uid, SITE_SERIES_UID_ROOT);
  for (int s = 0; s < slices; ++s) {
    DcmFileFormat ff;
    DcmDataset* ds = ff.getDataset();
    char sop[100];
    dcmGenerateUniqueIdentifier(sop, SITE_INSTANCE_UID_ROOT);
    ds->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
    ds->putAndInsertString(DCM_SOPInstanceUID, sop);
    ds->putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str());
    ds->putAndInsertString(DCM_SeriesInstanceUID, series_uid);
    ds->putAndInsertString(DCM_PatientName, kPatientName);
    ds->putAndInsertString(DCM_PatientID, kPatientId);
    ds->putAndInsertString(DCM_PatientBirthDate, "19610203");
    ds->putAndInsertString(DCM_InstitutionName, "Hospital Importtest");
    ds->putAndInsertString(DCM_StudyDate, "20200102");
    ds->putAndInsertString(DCM_Modality, "CT");
    ds->putAndInsertString(DCM_SeriesNumber, std::to_string(series_number).c_str());
    ds->putAndInsertString(DCM_InstanceNumber, std::to_string(s + 1).c_str());
    ds->putAndInsertString(DCM_ImagePositionPatient, ("0\\0\\" + std::to_string(2 * s)).c_str());
    ds->putAndInsertString(DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
    ds->putAndInsertString(DCM_PixelSpacing, "0.5\\0.5");
    ds->putAndInsertString(DCM_SliceThickness, "2");
    ds->putAndInsertString(DCM_RescaleSlope, "1");
    ds->putAndInsertString(DCM_RescaleIntercept, "-1024");
    ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
    ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
    ds->putAndInsertUint16(DCM_Rows, 8);
    ds->putAndInsertUint16(DCM_Columns, 8);
    ds->putAndInsertUint16(DCM_BitsAllocated, 16);
    ds->putAndInsertUint16(DCM_BitsStored, 16);
    ds->putAndInsertUint16(DCM_HighBit, 15);
    ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
    std::vector<Uint16> px(64);
    for (int n = 0; n < 64; ++n) px[n] = static_cast<Uint16>(1000 + 10 * s + n + 100 * series_number);
    ds->putAndInsertUint16Array(DCM_PixelData, px.data(), 64);
    const fs::path f = dir / ("slice" + std::to_string(s) + ".dcm");
    ASSERT_TRUE(ff.saveFile(f.string().c_str(), EXS_LittleEndianExplicit).good()) << f;
  }
}

app::Actor admin_actor() {
  return app::Actor{0, "tester", "admin", ""};
}

std::vector<store::Case> all_cases(app::Lab& lab) {
  store::CaseFilter f;
  f.limit = 1000;
  return lab.store().read([&](store::ReadTxn& t) { return t.list_cases(f); }).items;
}

}  // namespace

TEST(Import, NiftiAndPng_CasesJobsAudit_DuplicateStoredOnce) {
  TempDir tmp;
  io::write_image(image3d(100), tmp / "scan_one.nii.gz");
  io::write_image(image2d(), tmp / "mip_two.png");
  auto lab = app::Lab::open_beside_server(tmp / "data");
  json r = app::import_scans(*lab, admin_actor(), {{tmp / "scan_one.nii.gz", ""}, {tmp / "mip_two.png", ""}},
                             app::ImportOptions{false, true, "CT", "cli"});
  ASSERT_EQ(r["cases"].size(), 2u) << r.dump(2);
  EXPECT_TRUE(r["errors"].empty()) << r.dump(2);
  EXPECT_EQ(r["cases"][0]["name"], "scan_one");
  EXPECT_EQ(r["cases"][1]["name"], "mip_two");
  EXPECT_EQ(r["cases"][0]["status"], "new");
  EXPECT_EQ(r["cases"][0]["modality"], "CT");
  ASSERT_EQ(r["jobs"].size(), 2u);
  auto job = lab->store().read([&](store::ReadTxn& t) { return t.get_job(r["jobs"][0]["id"].get<int64_t>()); });
  EXPECT_EQ(job.type, store::JobType::Presegment);
  EXPECT_EQ(job.state, store::JobState::Queued);
  EXPECT_EQ(*job.case_id, r["cases"][0]["id"].get<int64_t>());
  // The stored image holds the same voxels.
  auto image =
      lab->store().read([&](store::ReadTxn& t) { return t.get_image(r["cases"][0]["image_id"].get<int64_t>()); });
  Volume back = io::read_image(image.path);
  ASSERT_TRUE(back.geometry().same_grid(grid3d()));
  EXPECT_EQ(back.value(17), image3d(100).value(17));
  // Audited.
  store::AuditQuery q;
  q.action = "import";
  EXPECT_EQ(lab->store().read([&](store::ReadTxn& t) { return t.list_audit(q); }).size(), 2u);
  // Again: nothing new, both reported as skipped duplicates.
  json again = app::import_scans(*lab, admin_actor(), {{tmp / "scan_one.nii.gz", ""}, {tmp / "mip_two.png", ""}});
  EXPECT_TRUE(again["cases"].empty()) << again.dump(2);
  EXPECT_EQ(again["skipped"].size(), 2u);
  EXPECT_EQ(all_cases(*lab).size(), 2u);
  EXPECT_TRUE(lab->store().verify_audit().intact);
}

TEST(Import, BadFile_ErrorNamesIt_NothingStored) {
  TempDir tmp;
  {
    std::ofstream(tmp / "broken.nii.gz") << "this is not a gzip file at all";
    std::ofstream(tmp / "notes.txt") << "hello";
  }
  auto lab = app::Lab::open_beside_server(tmp / "data");
  json r = app::import_scans(*lab, admin_actor(),
                             {{tmp / "broken.nii.gz", "broken.nii.gz"}, {tmp / "notes.txt", "notes.txt"}});
  ASSERT_EQ(r["errors"].size(), 2u) << r.dump(2);
  EXPECT_EQ(r["errors"][0]["file"], "broken.nii.gz");
  EXPECT_NE(r["errors"][0]["message"].get<std::string>().find("broken.nii.gz"), std::string::npos);
  EXPECT_EQ(r["errors"][1]["code"], "UnsupportedFormat");
  EXPECT_TRUE(r["cases"].empty());
  EXPECT_TRUE(all_cases(*lab).empty());
  EXPECT_FALSE(lab->store().read([](store::ReadTxn& t) { return t.find_case("broken"); }));
}

TEST(Import, SyntheticDicom_DeidentifiedWithStablePseudonym) {
  TempDir tmp;
  char study[100];
  dcmGenerateUniqueIdentifier(study, SITE_STUDY_UID_ROOT);
  write_dicom_series(tmp / "first", study, 3, 3);
  write_dicom_series(tmp / "second", study, 4, 4);
  auto lab = app::Lab::open_beside_server(tmp / "data");
  json a = app::import_scans(*lab, admin_actor(), {{tmp / "first", "first"}});
  json b = app::import_scans(*lab, admin_actor(), {{tmp / "second", "second"}});
  ASSERT_EQ(a["cases"].size(), 1u) << a.dump(2);
  ASSERT_EQ(b["cases"].size(), 1u) << b.dump(2);
  const std::string n1 = a["cases"][0]["name"], n2 = b["cases"][0]["name"];
  EXPECT_EQ(n1.substr(0, 4), "PAT-");
  EXPECT_EQ(n1.substr(0, 14), n2.substr(0, 14)) << "same patient, same pseudonym: " << n1 << " " << n2;
  EXPECT_EQ(n1.substr(14), "_CT_s3");
  EXPECT_EQ(a["cases"][0]["modality"], "CT");
  // One patient row, named by the pseudonym.
  EXPECT_TRUE(lab->store().read([&](store::ReadTxn& t) { return t.find_patient(n1.substr(0, 14)); }));
  // The volume: 8x8x3 with the rescale applied.
  auto image =
      lab->store().read([&](store::ReadTxn& t) { return t.get_image(a["cases"][0]["image_id"].get<int64_t>()); });
  Volume v = io::read_image(image.path);
  EXPECT_EQ(v.geometry().size, (Size3{8, 8, 3}));
  EXPECT_DOUBLE_EQ(v.value(0), 1000 + 300 - 1024);
  // No identifier anywhere in the data folder (database, WAL, images, audit).
  const std::string bytes = all_bytes(tmp / "data");
  EXPECT_EQ(bytes.find(kPatientId), std::string::npos);
  EXPECT_EQ(bytes.find("Janeimport"), std::string::npos);
  EXPECT_EQ(bytes.find("Importtest"), std::string::npos);
  EXPECT_EQ(bytes.find(study), std::string::npos);
  // The key is kept beside the database, private.
  EXPECT_EQ(fs::status(tmp / "data" / "deid.key").permissions() & fs::perms::group_all, fs::perms::none);
  // Importing the same series again stores nothing new.
  json again = app::import_scans(*lab, admin_actor(), {{tmp / "first", "first"}});
  EXPECT_TRUE(again["cases"].empty());
  EXPECT_EQ(again["skipped"].size(), 1u);
}

TEST(Import, SharedDicom_MrSeriesDeidentified) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const fs::path src = tumorlab::testing::shared_data_dir() / "dicom" / "mr-brain-20slice";
  if (!fs::is_directory(src)) GTEST_SKIP() << "no " << src;
  DcmFileFormat ff;
  ASSERT_TRUE(ff.loadFile((src / "brain_001.dcm").string().c_str()).good());
  OFString name, id;
  ff.getDataset()->findAndGetOFString(DCM_PatientName, name);
  ff.getDataset()->findAndGetOFString(DCM_PatientID, id);
  TempDir tmp;
  auto lab = app::Lab::open_beside_server(tmp / "data");
  json r = app::import_scans(*lab, admin_actor(), {{src, "mr-brain-20slice"}});
  ASSERT_EQ(r["cases"].size(), 1u) << r.dump(2);
  EXPECT_EQ(r["cases"][0]["name"].get<std::string>().substr(0, 4), "PAT-");
  EXPECT_EQ(r["cases"][0]["modality"], "MR");
  const std::string bytes = all_bytes(tmp / "data");
  if (name.length() >= 4) {
    EXPECT_EQ(bytes.find(name.c_str()), std::string::npos) << "PatientName leaked";
  }
  if (id.length() >= 4) {
    EXPECT_EQ(bytes.find(id.c_str()), std::string::npos) << "PatientID leaked";
  }
}

TEST(ImportExport, NnunetDataset_GroundTruth_ExportRoundTrip) {
  TempDir tmp;
  const fs::path ds = tmp / "Dataset777_Test";
  fs::create_directories(ds / "imagesTr");
  fs::create_directories(ds / "labelsTr");
  for (int c = 0; c < 2; ++c) {
    const std::string id = "case" + std::to_string(c);
    io::write_image(image3d(static_cast<int16_t>(10 * c)), ds / "imagesTr" / (id + "_0000.nii.gz"));
    io::write_image(image3d(static_cast<int16_t>(500 + 10 * c)), ds / "imagesTr" / (id + "_0001.nii.gz"));
    io::write_label(label3d(2 + 3 * c), ds / "labelsTr" / (id + ".nii.gz"));
  }
  std::ofstream(ds / "dataset.json") << json{
      {"channel_names", {{"0", "FLAIR"}, {"1", "T1 post-contrast"}}},
      {"labels", {{"background", 0}, {"lesion", 1}}},
      {"numTraining", 2},
      {"file_ending", ".nii.gz"}}.dump();
  auto lab = app::Lab::open_beside_server(tmp / "data");
  json r = app::import_scans(*lab, admin_actor(), {{ds, "Dataset777_Test"}});
  ASSERT_EQ(r["cases"].size(), 2u) << r.dump(2);
  EXPECT_TRUE(r["jobs"].empty()) << "labelled cases need no pre-segmentation";
  for (const auto& c : r["cases"]) {
    EXPECT_EQ(c["status"], "validated");
    EXPECT_EQ(c["modality"], "MR");
    EXPECT_EQ(c["channels"], json({"FLAIR", "T1 post-contrast"}));
    auto revs = lab->store().read([&](store::ReadTxn& t) { return t.list_revisions(c["id"].get<int64_t>()); });
    ASSERT_EQ(revs.size(), 1u);
    EXPECT_EQ(revs[0].kind, store::RevisionKind::Imported);
    EXPECT_EQ(revs[0].voxel_count, 27);
  }
  // Export and read back with the nnU-Net reader: same channels, same labels voxel for voxel.
  app::NnunetExportRequest req;
  req.output = tmp / "out" / "Dataset500_tumorlab";
  json e = app::export_nnunet(*lab, admin_actor(), req);
  EXPECT_EQ(e["num_training"], 2);
  io::NnunetDataset back = io::read_nnunet_dataset(req.output);
  ASSERT_EQ(back.training.size(), 2u);
  EXPECT_EQ(back.channel_names, (std::vector<std::string>{"FLAIR", "T1 post-contrast"}));
  EXPECT_EQ(back.file_ending, ".nii.gz");
  EXPECT_EQ(back.labels.at("lesion"), 1);
  for (int c = 0; c < 2; ++c) {
    const auto& bc = back.training[static_cast<std::size_t>(c)];
    EXPECT_EQ(bc.id, "case" + std::to_string(c));
    EXPECT_EQ(io::read_label(bc.label).voxels(), label3d(2 + 3 * c).voxels());
    Volume ch1 = io::read_image(bc.channels[1]);
    EXPECT_EQ(ch1.value(5), image3d(static_cast<int16_t>(500 + 10 * c)).value(5));
  }
  store::AuditQuery q;
  q.action = "export";
  EXPECT_EQ(lab->store().read([&](store::ReadTxn& t) { return t.list_audit(q); }).size(), 1u);
  // The output must be new.
  EXPECT_THROW(app::export_nnunet(*lab, admin_actor(), req), Error);
  EXPECT_EQ(scratch_entries(tmp / "data"), std::vector<std::string>{}) << "the import's scratch folder is removed";
}

// ---- The real server ------------------------------------------------------------------------

namespace {

// No job worker: jobs stay queued where the tests count them.
class Server : public tumorlab::testing::ServeProcess {
 public:
  Server(const fs::path& data_dir, std::vector<std::string> extra)
      : ServeProcess(data_dir, kAdminPassword, {}, with_no_jobs(std::move(extra))) {}
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port());
    c.set_read_timeout(120, 0);
    c.set_write_timeout(120, 0);
    return c;
  }

 private:
  static std::vector<std::string> with_no_jobs(std::vector<std::string> extra) {
    extra.insert(extra.begin(), {"--job-workers", "0"});
    return extra;
  }
};

}  // namespace

TEST(UploadServer, MultipartRawDuplicateBadFile_AndLabelFormats) {
  TempDir tmp;
  io::write_image(image3d(40), tmp / "scan.nii.gz");
  io::write_image(image2d(), tmp / "mip.png");
  char study[100];
  dcmGenerateUniqueIdentifier(study, SITE_STUDY_UID_ROOT);
  write_dicom_series(tmp / "dicom", study, 7, 3);
  Server server(tmp / "data", {"--no-demo"});
  ASSERT_GT(server.port(), 0);
  auto c = server.client();
  auto admin = login_bearer(c, "admin", kAdminPassword);
  EXPECT_EQ(parse_body(c.Get("/api/cases", admin))["total"], 0) << "--no-demo: no demo cases";

  // Multipart: a NIfTI and three DICOM files in one request.
  httplib::MultipartFormDataItems items{{"file", slurp_file(tmp / "scan.nii.gz"), "scan.nii.gz", "application/gzip"},
                                        {"modality", "MR", "", ""}};
  for (int s = 0; s < 3; ++s)
    items.push_back({"file", slurp_file(tmp / "dicom" / ("slice" + std::to_string(s) + ".dcm")),
                     "slice" + std::to_string(s) + ".dcm", "application/dicom"});
  auto r = c.Post("/api/uploads", admin, items);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  json j = parse_body(r);
  ASSERT_EQ(j["cases"].size(), 2u) << r->body;
  EXPECT_EQ(j["cases"][0]["name"], "scan");
  EXPECT_EQ(j["cases"][0]["modality"], "MR");
  EXPECT_EQ(j["cases"][1]["name"].get<std::string>().substr(0, 4), "PAT-");
  EXPECT_EQ(j["jobs"].size(), 2u);
  EXPECT_EQ(j["job"]["id"], j["jobs"][0]["id"]);
  const int64_t scan_id = j["cases"][0]["id"];

  // Raw body with ?filename= (what the web UI sends).
  r = c.Post("/api/uploads?filename=mip.png", admin, slurp_file(tmp / "mip.png"), "application/octet-stream");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  const int64_t mip_id = parse_body(r)["cases"][0]["id"];

  // The same file again: stored once, 200 with the duplicate listed.
  r = c.Post("/api/uploads?filename=copy.png", admin, slurp_file(tmp / "mip.png"), "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(parse_body(r)["skipped"].size(), 1u);

  // Unreadable: 4xx naming the file, nothing stored.
  r = c.Post("/api/uploads?filename=truncated.nii.gz", admin, slurp_file(tmp / "scan.nii.gz").substr(0, 60),
             "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_GE(r->status, 400);
  EXPECT_LT(r->status, 500);
  EXPECT_NE(parse_body(r)["error"]["message"].get<std::string>().find("truncated.nii.gz"), std::string::npos) << r->body;
  r = c.Post("/api/uploads?filename=readme.txt", admin, "just text", "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415) << r->body;
  EXPECT_NE(r->body.find("readme.txt"), std::string::npos);
  EXPECT_EQ(parse_body(c.Get("/api/cases", admin))["total"], 3);

  // Annotators may not upload or export; reviewers may.
  auto cr = c.Post("/api/users", admin,
                   json{{"username", "anna"}, {"role", "annotator"}, {"password", "annotator-pass-1"}}.dump(),
                   "application/json");
  ASSERT_TRUE(cr && cr->status < 300) << (cr ? cr->body : "");
  auto anna = login_bearer(c, "anna", "annotator-pass-1");
  r = c.Post("/api/uploads?filename=mip.png", anna, slurp_file(tmp / "mip.png"), "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);

  // A label on the 2D case, then exported as PNG and as NIfTI; PNG of a 3D case is refused.
  LabelMap l2(image2d().geometry());
  for (int i = 3; i < 9; ++i) l2.at(i, 4, 0) = 1;
  io::write_label(l2, tmp / "l2.nii.gz");
  r = c.Post("/api/cases/" + std::to_string(mip_id) + "/revisions", admin, slurp_file(tmp / "l2.nii.gz"),
             "application/gzip");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  const int64_t rev = parse_body(r)["id"];
  r = c.Get("/api/cases/" + std::to_string(mip_id) + "/revisions/" + std::to_string(rev) + "/label?format=png", admin);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
  { std::ofstream(tmp / "back.png", std::ios::binary) << r->body; }
  EXPECT_EQ(io::read_label(tmp / "back.png").voxels(), l2.voxels());
  r = c.Get("/api/cases/" + std::to_string(mip_id) + "/revisions/" + std::to_string(rev) + "/label?format=nifti",
            admin);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  io::write_label(label3d(1), tmp / "l3.nii.gz");
  r = c.Post("/api/cases/" + std::to_string(scan_id) + "/revisions", admin, slurp_file(tmp / "l3.nii.gz"),
             "application/gzip");
  ASSERT_TRUE(r);
  const int64_t rev3 = parse_body(r)["id"];
  r = c.Get("/api/cases/" + std::to_string(scan_id) + "/revisions/" + std::to_string(rev3) + "/label?format=png",
            admin);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422) << r->body;
  EXPECT_NE(r->body.find("3D"), std::string::npos);

  // Export over the API: nothing validated yet -> 422; validate the 3D case, export, download.
  r = c.Post("/api/exports", admin, "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422) << r->body;
  for (const char* s : {"submitted", "validated"}) {
    r = c.Post("/api/cases/" + std::to_string(scan_id) + "/status", admin, json{{"status", s}}.dump(),
               "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
  }
  r = c.Post("/api/exports", admin, json{{"name", "Dataset501_Up"}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  json ex = parse_body(r);
  EXPECT_EQ(ex["num_training"], 1);
  r = c.Get(ex["download"].get<std::string>(), admin);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->body.substr(0, 2), "PK");
  { std::ofstream(tmp / "export.zip", std::ios::binary) << r->body; }
  // De-identification: the identifiers are nowhere in the data folder, the export or the log.
  const std::string bytes = all_bytes(tmp / "data") + r->body + server.log();
  EXPECT_EQ(bytes.find(kPatientId), std::string::npos);
  EXPECT_EQ(bytes.find("Janeimport"), std::string::npos);
  EXPECT_EQ(c.Get("/api/exports/not-an-id", admin)->status, 404);
  // The uploads, label saves, PNG download and export above each worked in scratch files or
  // folders of DIR/tmp; none is left behind.
  EXPECT_EQ(scratch_entries(tmp / "data"), std::vector<std::string>{});
}

TEST(UploadServer, EmptyDataFolder_SeededWithDemoCasesOnce) {
  TempDir tmp;
  int64_t total = 0;
  {
    Server server(tmp / "data", {});
    ASSERT_GT(server.port(), 0);
    auto c = server.client();
    auto admin = login_bearer(c, "admin", kAdminPassword);
    json all = parse_body(c.Get("/api/cases?limit=100", admin));
    total = all["total"];
    EXPECT_EQ(total, 4) << all.dump(2);
    for (const auto& cs : all["items"]) {
      EXPECT_TRUE(cs["demo"].get<bool>());
      EXPECT_EQ(cs["name"].get<std::string>().substr(0, 5), "DEMO-");
      EXPECT_EQ(cs["status"], "new") << "demo reference labels are not ground truth";
    }
    json jobs = parse_body(c.Get("/api/jobs?type=presegment&limit=100", admin));
    json list = jobs.is_array() ? jobs : jobs["items"];
    EXPECT_EQ(list.size(), 4u) << jobs.dump(2);
    EXPECT_NE(server.log().find("DEMO"), std::string::npos);
  }
  Server again(tmp / "data", {});
  ASSERT_GT(again.port(), 0);
  auto c = again.client();
  auto admin = login_bearer(c, "admin", kAdminPassword);
  EXPECT_EQ(parse_body(c.Get("/api/cases", admin))["total"], total) << "not seeded twice";
}

// A zip inside a zip is opened; one more level is refused with an error naming the upload (a zip
// that contains itself must not recurse without end).
TEST(Import, NestedZip_OneLevelOpened_DeeperRefused) {
  TempDir tmp;
  for (const char* d : {"inner", "mid", "outer"}) fs::create_directories(tmp / d);
  io::write_image(image3d(7), tmp / "inner" / "nested_scan.nii.gz");
  io::zip_folder(tmp / "inner", tmp / "mid" / "inner.zip");
  io::zip_folder(tmp / "mid", tmp / "outer" / "mid.zip");
  io::zip_folder(tmp / "outer", tmp / "outermost.zip");
  auto lab = app::Lab::open_beside_server(tmp / "data");
  json deep = app::import_scans(*lab, admin_actor(), {{tmp / "outermost.zip", "outermost.zip"}});
  EXPECT_TRUE(deep["cases"].empty()) << deep.dump(2);
  ASSERT_EQ(deep["errors"].size(), 1u) << deep.dump(2);
  EXPECT_EQ(deep["errors"][0]["code"], "UnsupportedFormat");
  EXPECT_EQ(deep["errors"][0]["file"].get<std::string>().rfind("outermost.zip", 0), 0u) << deep.dump(2);
  json two = app::import_scans(*lab, admin_actor(), {{tmp / "outer" / "mid.zip", "mid.zip"}});
  ASSERT_EQ(two["cases"].size(), 1u) << two.dump(2);
  EXPECT_EQ(two["cases"][0]["name"], "nested_scan");
}

// `tumorlab import` and `tumorlab export` as an admin runs them on the server's data folder.
TEST(ImportExportCli, ImportDatasetTwice_ThenExport_AndBadInputExit2) {
  TempDir tmp;
  namespace cli = tumorlab::testing::cli;
  const fs::path ds = tmp / "Dataset778_Cli";
  fs::create_directories(ds / "imagesTr");
  fs::create_directories(ds / "labelsTr");
  io::write_image(image3d(3), ds / "imagesTr" / "c1_0000.nii.gz");
  io::write_label(label3d(4), ds / "labelsTr" / "c1.nii.gz");
  std::ofstream(ds / "dataset.json") << json{
      {"channel_names", {{"0", "CT"}}},
      {"labels", {{"background", 0}, {"lesion", 1}}},
      {"numTraining", 1},
      {"file_ending", ".nii.gz"}}.dump();
  const std::string data = cli::quote((tmp / "data").string());
  auto r = cli::run("import " + cli::quote(ds.string()) + " --data-dir " + data + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json j = json::parse(r.out);
  ASSERT_EQ(j["cases"].size(), 1u) << r.out;
  EXPECT_EQ(j["cases"][0]["status"], "validated");
  EXPECT_EQ(j["cases"][0]["modality"], "CT");
  r = cli::run("import " + cli::quote(ds.string()) + " --data-dir " + data);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("0 cases added, 1 skipped"), std::string::npos) << r.out;
  // Not an image: exit 2, the file named once in the message.
  std::ofstream(tmp / "notes.txt") << "text";
  r = cli::run("import " + cli::quote((tmp / "notes.txt").string()) + " --data-dir " + data);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("notes.txt: not an image"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("notes.txt: " + (tmp / "notes.txt").string()), std::string::npos) << r.err;
  // Export, read back with the nnU-Net reader.
  const fs::path out = tmp / "export" / "Dataset501_Cli";
  r = cli::run("export --nnunet " + cli::quote(out.string()) + " --data-dir " + data + " --name Dataset501_Cli");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  io::NnunetDataset back = io::read_nnunet_dataset(out);
  ASSERT_EQ(back.training.size(), 1u);
  EXPECT_EQ(io::read_label(back.training[0].label).voxels(), label3d(4).voxels());
  // A second export into the same folder is refused (exit 2), the folder kept.
  r = cli::run("export --nnunet " + cli::quote(out.string()) + " --data-dir " + data);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(fs::exists(out / "dataset.json"));
}
