//! An emulated ConfigMgr site: runs the connector's scripts where no ConfigMgr can run.
//!
//! Why it exists: tests, `ferry demo` and `ferry sccm emulate` need a site that behaves like
//! ConfigMgr — same parameter binding, same errors, same stdout — for the exact text the
//! connector would give `powershell.exe`. The emulator only executes what [`crate::read()`]
//! accepted, binds every call through [`crate::bind`] (the cmdlet table), and keeps the site in
//! memory, saved to `<dir>/site.json` with an atomic replace (temp file + rename) after each run.
//!
//! What it models: applications (CI_ID, `ScopeId_…/Application_…` model names, revisions
//! bumped by every change, SDMPackageXML from [`crate::sdm`]), deployment types, content
//! distribution per distribution point group, deployments per collection, and application
//! folders as `SMS_ObjectContainerNode`/`SMS_ObjectContainerItem` rows (ObjectType 6000).
//! Parameters it binds but does not model (requirements, repair commands, …) are accepted and
//! ignored. Wildcards support `*` and `?`.
//!
//! Layout: [`state`] holds the site's data (what `site.json` stores); this module the site
//! itself (opening, saving, running a script); the interpreter executes a read script's
//! statements against it.

mod interpreter;
mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::read::ReadError;
use crate::sdm;

pub use interpreter::write_ps_json;
pub use state::*;

/// File name of the saved site inside its folder.
pub const SITE_FILE: &str = "site.json";

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The reader refused the script; nothing ran.
    #[error(transparent)]
    Refused(#[from] ReadError),
    /// A cmdlet failed (`$ErrorActionPreference = 'Stop'` ends the script there). `stdout` is
    /// what the script printed before, as a real run would have.
    #[error("line {line}: {cmdlet} : {message}")]
    Cmdlet {
        line: usize,
        cmdlet: String,
        message: String,
        stdout: String,
    },
    #[error("site folder {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("site file {} is not a valid site: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
}

/// A site, optionally backed by a folder.
#[derive(Debug)]
pub struct Site {
    dir: Option<PathBuf>,
    state: SiteState,
    /// Model name → position in `state.applications` (applications are never removed), so
    /// that a 10 000-application inventory does not search the list for every property.
    by_model: HashMap<String, usize>,
}

impl Site {
    /// An in-memory demo site (nothing is saved).
    pub fn demo() -> Site {
        Site::with_state(None, SiteState::demo())
    }

    /// Opens the site saved in `dir`, creating the folder with the demo site if it has none.
    pub fn open(dir: &Path) -> Result<Site, EmulatorError> {
        let file = dir.join(SITE_FILE);
        let io = |source| EmulatorError::Io {
            path: dir.to_owned(),
            source,
        };
        match std::fs::read(&file) {
            Ok(bytes) => {
                let state = serde_json::from_slice(&bytes).map_err(|e| EmulatorError::Corrupt {
                    path: file.clone(),
                    message: e.to_string(),
                })?;
                Ok(Site::with_state(Some(dir.to_owned()), state))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io)?;
                let site = Site::with_state(Some(dir.to_owned()), SiteState::demo());
                site.save()?;
                Ok(site)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn with_state(dir: Option<PathBuf>, state: SiteState) -> Site {
        let by_model = state
            .applications
            .iter()
            .enumerate()
            .map(|(i, a)| (a.model_name.clone(), i))
            .collect();
        Site {
            dir,
            state,
            by_model,
        }
    }

    fn app_pos(&self, model: &str) -> Option<usize> {
        self.by_model.get(model).copied()
    }

    fn push_app(&mut self, app: Application) {
        self.by_model
            .insert(app.model_name.clone(), self.state.applications.len());
        self.state.applications.push(app);
    }

    pub fn state(&self) -> &SiteState {
        &self.state
    }

    /// Writes `site.json` atomically: a reader sees the old or the new site, never half.
    pub fn save(&self) -> Result<(), EmulatorError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let io = |source| EmulatorError::Io {
            path: dir.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(&self.state).map_err(|e| EmulatorError::Corrupt {
            path: dir.join(SITE_FILE),
            message: e.to_string(),
        })?;
        let tmp = dir.join(format!("{SITE_FILE}.tmp"));
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, dir.join(SITE_FILE)).map_err(io)
    }

    /// Reads and runs a script; returns its stdout exactly as the real site would print it
    /// (result lines, `\n`-terminated). Changes made before a failing cmdlet stay, as on a real
    /// site, and the site is saved either way.
    pub fn run(&mut self, script_text: &str) -> Result<String, EmulatorError> {
        let script = crate::read::read(script_text)?;
        let (stdout, failure) = self.execute(&script);
        self.save()?;
        match failure {
            Some((line, cmdlet, message)) => Err(EmulatorError::Cmdlet {
                line,
                cmdlet,
                message,
                stdout,
            }),
            None => Ok(stdout),
        }
    }

    /// Adds `copies` copies of the named application under new names, IDs and logical names:
    /// large sites for benchmarks and load tests without running thousands of scripts.
    pub fn replicate_application(&mut self, name: &str, copies: usize) {
        let Some(template) = self
            .state
            .applications
            .iter()
            .find(|a| a.name == name)
            .cloned()
        else {
            return;
        };
        for i in 1..=copies {
            let mut app = template.clone();
            app.ci_id = self.next_id();
            app.logical_name = format!("Application_{}", uuid::Uuid::new_v4());
            app.model_name = format!("{}/{}", self.state.scope_id, app.logical_name);
            app.name = format!("{name} #{i}");
            for dt in &mut app.deployment_types {
                dt.ci_id = self.next_id();
                dt.logical_name = format!("DeploymentType_{}", uuid::Uuid::new_v4());
            }
            self.push_app(app);
        }
    }

    /// The SDMPackageXML of an application, as `Get-CMApplication` returns it.
    pub fn sdm_package_xml(&self, app: &Application) -> String {
        sdm::to_xml(&self.sdm_application(app))
    }

    /// The application as the digest codec models it.
    pub fn sdm_application(&self, app: &Application) -> sdm::Application {
        let language = app
            .default_language_id
            .and_then(interpreter::culture_by_lcid)
            .unwrap_or("en-US")
            .to_owned();
        sdm::Application {
            scope_id: self.state.scope_id.clone(),
            logical_name: app.logical_name.clone(),
            revision: app.revision,
            title: app.name.clone(),
            publisher: app.publisher.clone(),
            version: app.software_version.clone(),
            description: app.description.clone(),
            custom_id: app.optional_reference.clone(),
            default_language: language.clone(),
            localized: vec![sdm::LocalizedInfo {
                language,
                title: if app.localized_name.is_empty() {
                    app.name.clone()
                } else {
                    app.localized_name.clone()
                },
                publisher: app.publisher.clone(),
                version: app.software_version.clone(),
                ..Default::default()
            }],
            auto_install: app.auto_install,
            owners: app.owners.clone(),
            deployment_types: app
                .deployment_types
                .iter()
                .map(|dt| sdm::DeploymentType {
                    scope_id: self.state.scope_id.clone(),
                    logical_name: dt.logical_name.clone(),
                    revision: dt.revision,
                    title: dt.name.clone(),
                    admin_comment: dt.comment.clone(),
                    technology: dt.technology.clone(),
                    content_locations: vec![dt.content_location.clone()],
                    install_command: Some(dt.install_command.clone()),
                    uninstall_command: dt.uninstall_command.clone().filter(|c| !c.is_empty()),
                    execution_context: Some("System".into()),
                    user_interaction_mode: Some("Hidden".into()),
                    post_install_behavior: Some("BasedOnExitCode".into()),
                    max_run_time_mins: Some(dt.max_runtime_mins),
                    estimated_run_time_mins: Some(dt.estimated_runtime_mins),
                    run_as_32bit: dt.force_32bit,
                    detection: match &dt.detection {
                        DtDetection::Script {
                            language,
                            text,
                            run_as_32bit,
                        } => sdm::Detection::Script {
                            language: language.clone(),
                            body: text.clone(),
                            run_as_32bit: *run_as_32bit,
                        },
                        DtDetection::ProductCode(code) => sdm::Detection::MsiProductCode {
                            product_code: code.clone(),
                        },
                    },
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}
