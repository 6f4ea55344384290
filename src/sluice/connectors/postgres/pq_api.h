#pragma once

// libpq, opened on first use (core/dynamic_library.h): a run without a PostgreSQL node or
// history does not load it, nor the TLS, Kerberos and LDAP libraries it brings. Include this
// rather than <libpq-fe.h>; every function called is a macro below (a new one is a link error
// until added).

#include <libpq-fe.h>

#include "sluice/core/dynamic_library.h"

namespace sluice::pg {

DynamicLibrary& PqLibrary();
/// Open libpq; the error names the package to install. Call it before connecting.
Status LoadPq();

}  // namespace sluice::pg

// clang-format off
#define PQbackendPID SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQbackendPID)
#define PQbinaryTuples SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQbinaryTuples)
#define PQcancel SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQcancel)
#define PQclear SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQclear)
#define PQcmdTuples SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQcmdTuples)
#define PQconnectPoll SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQconnectPoll)
#define PQconnectStartParams SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQconnectStartParams)
#define PQconninfoFree SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQconninfoFree)
#define PQconninfoParse SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQconninfoParse)
#define PQconsumeInput SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQconsumeInput)
#define PQdb SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQdb)
#define PQdescribePrepared SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQdescribePrepared)
#define PQerrorMessage SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQerrorMessage)
#define PQexec SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQexec)
#define PQexecParams SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQexecParams)
#define PQexecPrepared SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQexecPrepared)
#define PQfinish SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQfinish)
#define PQfmod SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQfmod)
#define PQfname SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQfname)
#define PQfreeCancel SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQfreeCancel)
#define PQfreemem SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQfreemem)
#define PQftype SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQftype)
#define PQgetCancel SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQgetCancel)
#define PQgetCopyData SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQgetCopyData)
#define PQgetResult SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQgetResult)
#define PQgetisnull SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQgetisnull)
#define PQgetlength SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQgetlength)
#define PQgetvalue SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQgetvalue)
#define PQhost SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQhost)
#define PQisBusy SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQisBusy)
#define PQnfields SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQnfields)
#define PQntuples SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQntuples)
#define PQport SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQport)
#define PQprepare SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQprepare)
#define PQputCopyData SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQputCopyData)
#define PQputCopyEnd SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQputCopyEnd)
#define PQresultErrorField SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQresultErrorField)
#define PQresultErrorMessage SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQresultErrorMessage)
#define PQresultStatus SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQresultStatus)
#define PQsetNoticeReceiver SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQsetNoticeReceiver)
#define PQsocket SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQsocket)
#define PQstatus SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQstatus)
#define PQtransactionStatus SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQtransactionStatus)
#define PQuser SLUICE_DYNAMIC_FN(::sluice::pg::PqLibrary(), PQuser)
// clang-format on
