# System dependencies (Debian packages; see scripts/setup.sh and docs/BUILD.md).
# Only what the current targets use is required here; later components add theirs.
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(nlohmann_json 3.11 CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
list(APPEND CMAKE_MODULE_PATH ${PROJECT_SOURCE_DIR}/third_party)
find_package(RDKit REQUIRED COMPONENTS SmilesParse GraphMol RDGeneral Fingerprints DataStructs)
# IUPAC InChI (Debian's libinchi-dev; RDKit there is built without its InChI module).
find_path(LA3_INCHI_INCLUDE_DIR inchi_api.h REQUIRED)
find_library(LA3_INCHI_LIBRARY inchi REQUIRED)
add_library(InChI::InChI SHARED IMPORTED)
set_target_properties(InChI::InChI PROPERTIES IMPORTED_LOCATION ${LA3_INCHI_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${LA3_INCHI_INCLUDE_DIR})

set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(LA3_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu REQUIRED)

find_package(OpenMP COMPONENTS CXX)
# Open MPI (Debian's libopenmpi-dev): launch, rendezvous and the CPU collectives of
# data-parallel training (dist/).
find_package(MPI REQUIRED COMPONENTS CXX)
find_program(LA3_MPIEXEC NAMES mpirun mpiexec REQUIRED)

# sentencepiece has no CMake config in Debian; its .pc lists the trainer library too.
find_package(PkgConfig REQUIRED)
pkg_check_modules(SentencePiece REQUIRED IMPORTED_TARGET sentencepiece)
# Unicode data (NFD, categories, case) for BERT's tokenisation in eval/.
pkg_check_modules(Utf8proc REQUIRED IMPORTED_TARGET libutf8proc)
# The zip container of torch.save files (pytorch_model.bin; engine/io/torch_archive.cc).
pkg_check_modules(LibZip REQUIRED IMPORTED_TARGET libzip)

# llm_client/: libcurl for HTTP(S) (CURL::libcurl) and OpenSSL's libcrypto for SHA-256 keys.
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
# cpp-httplib (tests' scripted OpenAI-compatible server, the throughput bench): the pkg-config
# target carries the -D flags the prebuilt .so was compiled with (docs/BUILD.md pitfall 9).
if(LA3_BUILD_TESTS OR LA3_BUILD_BENCHMARKS)
  pkg_check_modules(CppHttplib REQUIRED IMPORTED_TARGET cpp-httplib)
endif()

if(LA3_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(LA3_BUILD_BENCHMARKS)
  find_package(benchmark CONFIG REQUIRED)
endif()
