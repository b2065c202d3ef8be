# Debian's librdkit-dev ships no CMake package (docs/BUILD.md): find the headers under
# include/rdkit and the libraries in /usr/lib, and make imported targets RDKit::<Component>
# that carry the Boost headers RDKit's own headers need.
#   find_package(RDKit REQUIRED COMPONENTS SmilesParse GraphMol RDGeneral)
find_package(RDKit CONFIG QUIET)
if(RDKit_FOUND)
  return()
endif()
find_package(Boost REQUIRED)
find_path(RDKit_INCLUDE_DIR GraphMol/GraphMol.h PATH_SUFFIXES rdkit)
set(RDKit_FOUND TRUE)
if(NOT RDKit_INCLUDE_DIR)
  set(RDKit_FOUND FALSE)
endif()
foreach(component IN LISTS RDKit_FIND_COMPONENTS)
  find_library(RDKit_${component}_LIBRARY NAMES RDKit${component})
  if(RDKit_${component}_LIBRARY AND RDKit_INCLUDE_DIR)
    if(NOT TARGET RDKit::${component})
      add_library(RDKit::${component} SHARED IMPORTED)
      set_target_properties(RDKit::${component} PROPERTIES
        IMPORTED_LOCATION ${RDKit_${component}_LIBRARY}
        INTERFACE_INCLUDE_DIRECTORIES ${RDKit_INCLUDE_DIR}
        INTERFACE_LINK_LIBRARIES Boost::headers)
    endif()
  else()
    set(RDKit_FOUND FALSE)
    message(STATUS "RDKit component ${component} not found")
  endif()
endforeach()
if(RDKit_FIND_REQUIRED AND NOT RDKit_FOUND)
  message(FATAL_ERROR "RDKit not found: install librdkit-dev (scripts/setup.sh does)")
endif()
