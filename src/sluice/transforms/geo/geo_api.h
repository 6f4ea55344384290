#pragma once

// GEOS and PROJ for the geo transforms, opened on first use (core/dynamic_library.h): a run
// without a geo node does not load them, nor the TIFF, SQLite, curl and GnuTLS that PROJ
// brings. Include this rather than <geos_c.h> or <proj.h>; every function called is a macro
// below (a new one is a link error until added).

#ifndef GEOS_USE_ONLY_R_API
#define GEOS_USE_ONLY_R_API
#endif
#include <geos_c.h>
#include <proj.h>

#include "sluice/core/dynamic_library.h"

namespace sluice::geo {

DynamicLibrary& GeosLibrary();
DynamicLibrary& ProjLibrary();
/// Open GEOS and PROJ; the error names the package to install. Each geo node calls it when
/// made.
Status LoadGeoLibraries();

}  // namespace sluice::geo

// clang-format off
#define GEOSArea_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSArea_r)
#define GEOSBufferParams_create_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSBufferParams_create_r)
#define GEOSBufferParams_destroy_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSBufferParams_destroy_r)
#define GEOSBufferParams_setEndCapStyle_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSBufferParams_setEndCapStyle_r)
#define GEOSBufferParams_setJoinStyle_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSBufferParams_setJoinStyle_r)
#define GEOSBufferParams_setMitreLimit_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSBufferParams_setMitreLimit_r)
#define GEOSBufferParams_setQuadrantSegments_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSBufferParams_setQuadrantSegments_r)
#define GEOSBufferWithParams_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSBufferWithParams_r)
#define GEOSBuffer_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSBuffer_r)
#define GEOSContext_setErrorMessageHandler_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSContext_setErrorMessageHandler_r)
#define GEOSContext_setNoticeMessageHandler_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSContext_setNoticeMessageHandler_r)
#define GEOSFree_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSFree_r)
#define GEOSGeomGetX_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGeomGetX_r)
#define GEOSGeomGetY_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGeomGetY_r)
#define GEOSGeomTypeId_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGeomTypeId_r)
#define GEOSGeom_createCollection_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGeom_createCollection_r)
#define GEOSGeom_createPointFromXY_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGeom_createPointFromXY_r)
#define GEOSGeom_destroy_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGeom_destroy_r)
#define GEOSGeom_getCoordinateDimension_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGeom_getCoordinateDimension_r)
#define GEOSGeom_getExtent_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGeom_getExtent_r)
#define GEOSGeom_transformXY_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGeom_transformXY_r)
#define GEOSGetCentroid_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGetCentroid_r)
#define GEOSGetNumCoordinates_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGetNumCoordinates_r)
#define GEOSGetSRID_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSGetSRID_r)
#define GEOSLength_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSLength_r)
#define GEOSMakeValid_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSMakeValid_r)
#define GEOSPrepare_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSPrepare_r)
#define GEOSPreparedGeom_destroy_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSPreparedGeom_destroy_r)
#define GEOSPreparedIntersects_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSPreparedIntersects_r)
#define GEOSSetSRID_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSSetSRID_r)
#define GEOSSimplify_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSSimplify_r)
#define GEOSTopologyPreserveSimplify_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSTopologyPreserveSimplify_r)
#define GEOSUnaryUnion_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSUnaryUnion_r)
#define GEOSWKBReader_create_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKBReader_create_r)
#define GEOSWKBReader_destroy_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKBReader_destroy_r)
#define GEOSWKBReader_read_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKBReader_read_r)
#define GEOSWKBWriter_create_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKBWriter_create_r)
#define GEOSWKBWriter_destroy_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKBWriter_destroy_r)
#define GEOSWKBWriter_setByteOrder_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKBWriter_setByteOrder_r)
#define GEOSWKBWriter_setFlavor_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKBWriter_setFlavor_r)
#define GEOSWKBWriter_setIncludeSRID_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKBWriter_setIncludeSRID_r)
#define GEOSWKBWriter_setOutputDimension_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKBWriter_setOutputDimension_r)
#define GEOSWKBWriter_write_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKBWriter_write_r)
#define GEOSWKTReader_create_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKTReader_create_r)
#define GEOSWKTReader_destroy_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKTReader_destroy_r)
#define GEOSWKTReader_read_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKTReader_read_r)
#define GEOSWKTWriter_create_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKTWriter_create_r)
#define GEOSWKTWriter_destroy_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKTWriter_destroy_r)
#define GEOSWKTWriter_setOutputDimension_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKTWriter_setOutputDimension_r)
#define GEOSWKTWriter_setRoundingPrecision_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKTWriter_setRoundingPrecision_r)
#define GEOSWKTWriter_setTrim_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKTWriter_setTrim_r)
#define GEOSWKTWriter_write_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSWKTWriter_write_r)
#define GEOS_finish_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOS_finish_r)
#define GEOS_init_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOS_init_r)
#define GEOSisEmpty_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSisEmpty_r)
#define GEOSisValidDetail_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSisValidDetail_r)
#define GEOSisValid_r SLUICE_DYNAMIC_FN(::sluice::geo::GeosLibrary(), GEOSisValid_r)
#define proj_context_create SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_context_create)
#define proj_context_destroy SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_context_destroy)
#define proj_context_errno SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_context_errno)
#define proj_context_errno_string SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_context_errno_string)
#define proj_coord SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_coord)
#define proj_create SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_create)
#define proj_create_crs_to_crs SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_create_crs_to_crs)
#define proj_destroy SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_destroy)
#define proj_errno SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_errno)
#define proj_errno_reset SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_errno_reset)
#define proj_get_id_auth_name SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_get_id_auth_name)
#define proj_get_id_code SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_get_id_code)
#define proj_is_crs SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_is_crs)
#define proj_log_level SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_log_level)
#define proj_normalize_for_visualization SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_normalize_for_visualization)
#define proj_trans SLUICE_DYNAMIC_FN(::sluice::geo::ProjLibrary(), proj_trans)
// clang-format on
