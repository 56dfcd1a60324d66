# Third-party packages, all from Debian 12 (scripts/setup.sh installs them).

find_package(ITK 5.2 REQUIRED COMPONENTS
  ITKCommon ITKIOImageBase ITKIONIFTI ITKIONRRD ITKIOMeta ITKIOPNG ITKIOTIFF ITKIOGDCM
  ITKImageGrid ITKImageFunction ITKDistanceMap ITKConnectedComponents ITKBinaryMathematicalMorphology
  ITKMathematicalMorphology ITKImageIntensity ITKThresholding ITKLabelMap)
# ITK's module list registers the IO factories through UseITK's generated header.
include(${ITK_USE_FILE})

find_package(GDCM REQUIRED)
find_package(DCMTK REQUIRED CONFIG)
find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(ZLIB REQUIRED)
find_package(PNG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBZIP REQUIRED IMPORTED_TARGET libzip)
find_package(Threads REQUIRED)
# Debian's LibTorch 1.13.1 (CPU, oneDNN).
find_package(Torch REQUIRED)
# Store: SQLite 3.40 and libsodium 1.0.18 (Argon2id, SHA-256, random tokens).
find_package(SQLite3 REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
# HTTP(S) server and client: Debian's cpp-httplib is a compiled library built with OpenSSL,
# zlib and brotli; its pkg-config file carries the matching CPPHTTPLIB_* definitions (they
# change class layouts, so every user must compile with them). Used only inside src/server
# .cpp files and the integration tests.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
find_package(OpenSSL REQUIRED)
