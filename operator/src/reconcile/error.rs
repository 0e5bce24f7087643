//! Why a reconcile failed, one variant per step that can, and how each failure is judged:
//! retried with backoff, or refused for good by the API server (403, 422).

/// Why a reconcile failed: one variant per step that can.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the StatefulSet: {0}")]
    ReadStatefulSet(#[source] kube::Error),
    #[error("creating a generated Secret: {0}")]
    GeneratedSecret(#[source] anyhow::Error),
    #[error("reading Secret {name}: {source}")]
    ReadSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing owned children: {0}")]
    ListOwned(#[source] kube::Error),
    #[error("applying {kind}/{name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("pruning {kind}/{name}: {source}")]
    Prune {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status: {0}")]
    WriteStatus(#[source] kube::Error),
    /// A StatefulSet change the API server would refuse (immutable fields), found before applying.
    #[error("StatefulSet not changed: {message}")]
    Immutable {
        reason: &'static str,
        message: String,
    },
    #[error("expanding the session volumes: {0}")]
    ExpandStorage(#[source] kube::Error),
    #[error("listing the Pods: {0}")]
    ReadPods(#[source] kube::Error),
}

impl Error {
    fn api_code(&self) -> Option<u16> {
        let api = match self {
            Error::ReadStatefulSet(e)
            | Error::ReadSecret { source: e, .. }
            | Error::ListOwned(e)
            | Error::Apply { source: e, .. }
            | Error::Prune { source: e, .. }
            | Error::WriteStatus(e)
            | Error::ExpandStorage(e)
            | Error::ReadPods(e) => Some(e),
            Error::Immutable { .. } => None,
            // The API errors of that step come wrapped, with the generation errors.
            Error::GeneratedSecret(e) => e.downcast_ref::<kube::Error>(),
        };
        match api {
            Some(kube::Error::Api(e)) => Some(e.code),
            _ => None,
        }
    }

    /// The condition reason when the API server refused for good: permissions (403) or an
    /// object it will never accept (422, e.g. an immutable field). Retrying soon cannot help.
    pub fn refused_reason(&self) -> Option<&'static str> {
        if let Error::Immutable { reason, .. } = self {
            return Some(reason);
        }
        match self.api_code() {
            Some(403) => Some("Forbidden"),
            Some(422) => Some("RejectedByAPIServer"),
            _ => None,
        }
    }

    /// Low-cardinality label for the errors metric.
    pub fn reason(&self) -> &'static str {
        match (self, self.api_code()) {
            (_, Some(409)) => "Conflict",
            (_, Some(403)) => "Forbidden",
            (_, Some(422)) => "Invalid",
            (_, Some(c)) if c >= 500 => "ServerError",
            (Error::Apply { .. }, _) => "ApplyFailed",
            (Error::Immutable { .. }, _) => "Immutable",
            (Error::GeneratedSecret(_), _) => "Internal",
            _ => "ApiError",
        }
    }
}
