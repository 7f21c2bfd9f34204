//! `parse(to_xml(a)) == a` for hand-built applications and for arbitrary (normalised) ones.

use ferry_sccm::sdm::{
    self, ActionArg, Application, ContentFile, DependencyGroup, DependencyItem, DeploymentType,
    Detection, DetectionSetting, ExitCode, Expression, LocalizedInfo, Rule, SettingReference,
};
use proptest::prelude::*;

const SCOPE: &str = "ScopeId_FAA1136B-8C9D-41AC-98A5-926609F05C60";

fn standard_exit_codes() -> Vec<ExitCode> {
    [
        (0, "Success"),
        (1707, "Success"),
        (3010, "SoftReboot"),
        (1641, "HardReboot"),
        (1618, "FastRetry"),
    ]
    .into_iter()
    .map(|(code, class)| ExitCode {
        code,
        class: class.into(),
    })
    .collect()
}

fn base_app(dts: Vec<DeploymentType>) -> Application {
    Application {
        scope_id: SCOPE.into(),
        logical_name: "Application_1142d387-45ff-4d7e-b4af-8a460818d7e7".into(),
        revision: 3,
        title: "7-Zip 24.09 (x64)".into(),
        publisher: "Igor Pavlov".into(),
        version: "24.09".into(),
        description: "File archiver & <compressor>".into(),
        default_language: "en-US".into(),
        localized: vec![LocalizedInfo {
            language: "en-US".into(),
            title: "7-Zip".into(),
            publisher: "Igor Pavlov".into(),
            version: "24.09".into(),
            description: "Packs \"files\"\r\nand 'folders'".into(),
            keywords: vec!["archive".into(), "zip".into()],
            ..LocalizedInfo::default()
        }],
        auto_install: true,
        owners: vec!["CONTOSO\\ferry".into()],
        contacts: vec!["CONTOSO\\helpdesk".into()],
        deployment_types: dts,
        ..Application::default()
    }
}

fn script_dt() -> DeploymentType {
    DeploymentType {
        scope_id: SCOPE.into(),
        logical_name: "DeploymentType_3b8d6c12-47ed-4148-83d8-3ea3bb2199fa".into(),
        revision: 1,
        title: "7-Zip - Script".into(),
        technology: "Script".into(),
        content_locations: vec!["\\\\srv\\src$\\7zip\\24.09\\".into()],
        content_files: vec![ContentFile { name: "7z2409-x64.exe".into(), size: 1_600_000 }],
        install_command: Some("\"7z2409-x64.exe\" /S".into()),
        uninstall_command: Some("\"%ProgramFiles%\\7-Zip\\Uninstall.exe\" /S".into()),
        execution_context: Some("System".into()),
        requires_log_on: None,
        user_interaction_mode: Some("Hidden".into()),
        post_install_behavior: Some("BasedOnExitCode".into()),
        max_run_time_mins: Some(30),
        estimated_run_time_mins: Some(5),
        detection: Detection::Script {
            language: "PowerShell".into(),
            body: "if (Test-Path \"$env:ProgramFiles\\7-Zip\\7z.exe\") { Write-Output 'ok' }\n# <done> & ]]>".into(),
            run_as_32bit: false,
        },
        exit_codes: standard_exit_codes(),
        ..DeploymentType::default()
    }
}

fn msi_dt() -> DeploymentType {
    DeploymentType {
        scope_id: SCOPE.into(),
        logical_name: "DeploymentType_66ec823d-9c3b-41f0-a0b8-e20ae60ab834".into(),
        revision: 2,
        title: "7-Zip - Windows Installer (*.msi file)".into(),
        technology: "MSI".into(),
        content_locations: vec!["\\\\srv\\src$\\7zip\\msi\\".into()],
        install_command: Some("msiexec /i \"7z2409-x64.msi\" /q".into()),
        uninstall_command: Some("msiexec /x {23170F69-40C1-2702-2409-000001000000} /q".into()),
        execution_context: Some("System".into()),
        requires_log_on: Some(false),
        requires_user_interaction: true,
        user_interaction_mode: Some("Normal".into()),
        max_run_time_mins: Some(120),
        estimated_run_time_mins: Some(0),
        run_as_32bit: true,
        detection: Detection::MsiProductCode {
            product_code: "{23170F69-40C1-2702-2409-000001000000}".into(),
        },
        exit_codes: standard_exit_codes(),
        requirements: vec![Rule {
            id: "Rule_49e226fc-c6eb-4e49-9744-56cabc709bc8".into(),
            severity: "None".into(),
            display_name: "Operating system One of {All Windows 10 (64-bit)}".into(),
            expression: Some(Expression::OperatingSystem {
                operator: "OneOf".into(),
                operands: vec![Expression::RuleReference {
                    rule_id: "Windows/All_x64_Windows_10_and_higher_Clients".into(),
                }],
            }),
            ..Rule::default()
        }],
        dependencies: vec![DependencyGroup {
            id: "DTRule_8d3ae4a3-1c51-4c8b-a1b5-0e0e5d3a0c11".into(),
            severity: "Critical".into(),
            name: "VC++ runtime".into(),
            operator: "Or".into(),
            items: vec![DependencyItem {
                desired_state: "Required".into(),
                application_scope_id: SCOPE.into(),
                application_logical_name: "Application_aaaaaaaa-1111-2222-3333-444444444444".into(),
                application_version: "4".into(),
                dt_scope_id: SCOPE.into(),
                dt_logical_name: "DeploymentType_bbbbbbbb-1111-2222-3333-444444444444".into(),
                dt_version: "2".into(),
                changeable: true,
            }],
        }],
        ..DeploymentType::default()
    }
}

fn enhanced_dt() -> DeploymentType {
    let app_ln = "Application_1142d387-45ff-4d7e-b4af-8a460818d7e7";
    let setting = |name: &str, source: &str, dt: &str| {
        Expression::Setting(SettingReference {
            authoring_scope_id: SCOPE.into(),
            logical_name: app_ln.into(),
            version: "1".into(),
            data_type: dt.into(),
            setting_logical_name: name.into(),
            setting_source_type: source.into(),
            method: "Value".into(),
            changeable: "false".into(),
            ..SettingReference::default()
        })
    };
    DeploymentType {
        logical_name: "DeploymentType_0c9e1a54-3b6e-4d2f-9f34-2c1f8f6c0a01".into(),
        scope_id: SCOPE.into(),
        revision: 1,
        title: "Enhanced".into(),
        technology: "Script".into(),
        install_command: Some("setup.exe /quiet".into()),
        execution_context: Some("System".into()),
        detection: Detection::Enhanced {
            settings: vec![
                DetectionSetting::Registry {
                    logical_name: "RegSetting_1".into(),
                    data_type: "Version".into(),
                    hive: "HKEY_LOCAL_MACHINE".into(),
                    key: "SOFTWARE\\Vendor & Co\\<App>".into(),
                    value_name: "Version".into(),
                    is_64bit: true,
                },
                DetectionSetting::File {
                    logical_name: "File_2".into(),
                    path: "%ProgramFiles%\\App".into(),
                    filter: "app.exe".into(),
                    is_64bit: false,
                },
                DetectionSetting::Folder {
                    logical_name: "Folder_3".into(),
                    path: "%ProgramData%".into(),
                    filter: "App".into(),
                    is_64bit: true,
                },
                DetectionSetting::Msi {
                    logical_name: "MSI_4".into(),
                    product_code: "{AC76BA86-1033-FFFF-BA7E-000000000006}".into(),
                },
            ],
            rule: Some(Rule {
                id: "Rule_x".into(),
                severity: "Informational".into(),
                expression: Some(Expression::Operation {
                    operator: "And".into(),
                    operands: vec![
                        Expression::Operation {
                            operator: "GreaterEquals".into(),
                            operands: vec![
                                setting("RegSetting_1", "Registry", "Version"),
                                Expression::Constant {
                                    value: "1.2.3".into(),
                                    data_type: "Version".into(),
                                },
                            ],
                        },
                        Expression::Operation {
                            operator: "NotEquals".into(),
                            operands: vec![
                                setting("File_2", "File", "Int64"),
                                Expression::Constant {
                                    value: "0".into(),
                                    data_type: "Int64".into(),
                                },
                            ],
                        },
                    ],
                }),
                ..Rule::default()
            }),
        },
        ..DeploymentType::default()
    }
}

fn assert_round_trip(app: &Application) {
    let xml = sdm::to_xml(app);
    let back = sdm::parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_eq!(&back, app, "\n{xml}");
    assert_eq!(sdm::parse_str(&xml).as_ref(), Ok(app));
}

#[test]
fn script_dt_with_script_detection_round_trips() {
    assert_round_trip(&base_app(vec![script_dt()]));
}

#[test]
fn msi_dt_with_product_code_requirements_and_dependency_round_trips() {
    assert_round_trip(&base_app(vec![msi_dt()]));
}

#[test]
fn enhanced_detection_round_trips_through_custom_data_and_method_body() {
    let app = base_app(vec![enhanced_dt()]);
    assert_round_trip(&app);
    // Drop the CustomData copy: the escaped MethodBody alone must give the same detection.
    let xml = sdm::to_xml(&app);
    let start = xml
        .find("<EnhancedDetectionMethod>")
        .expect("custom data copy");
    let end = start
        + xml[start..]
            .find("</EnhancedDetectionMethod>")
            .expect("end")
        + "</EnhancedDetectionMethod>".len();
    let stripped = format!("{}{}", &xml[..start], &xml[end..]);
    assert_eq!(sdm::parse_str(&stripped).expect("parse"), app);
}

#[test]
fn several_dts_keep_priority_order() {
    assert_round_trip(&base_app(vec![msi_dt(), script_dt(), enhanced_dt()]));
}

#[test]
fn app_without_deployment_types_round_trips() {
    assert_round_trip(&base_app(vec![]));
    assert_round_trip(&Application::default());
}

#[test]
fn generated_document_has_configmgr_shape() {
    let xml = sdm::to_xml(&base_app(vec![script_dt()]));
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-16\"?>"));
    for needle in [
        "<AppMgmtDigest xmlns=\"http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest\"",
        "<Application AuthoringScopeId=\"ScopeId_FAA1136B-8C9D-41AC-98A5-926609F05C60\" LogicalName=\"Application_1142d387-45ff-4d7e-b4af-8a460818d7e7\" Version=\"3\">",
        "<DisplayInfo DefaultLanguage=\"en-US\">",
        "<Info Language=\"en-US\">",
        "<DeploymentTechnology>GLOBAL/ScriptDeploymentTechnology</DeploymentTechnology>",
        "<Installer Technology=\"Script\">",
        "<Location>\\\\srv\\src$\\7zip\\24.09\\</Location>",
        "<Arg Name=\"InstallCommandLine\" Type=\"String\">\"7z2409-x64.exe\" /S</Arg>",
        "<Arg Name=\"MaxExecuteTime\" Type=\"Int32\">30</Arg>",
        "<Arg Name=\"ExecuteTime\" Type=\"Int32\">5</Arg>",
        "<Arg Name=\"ScriptType\" Type=\"Int32\">0</Arg>",
        "<DetectionMethod>Script</DetectionMethod>",
        "<DetectionScript Language=\"PowerShell\">",
        "<ExitCode Code=\"3010\" Class=\"SoftReboot\" />",
        "<AutoInstall>true</AutoInstall>",
        "File archiver &amp; &lt;compressor&gt;",
        "]]&gt;",
    ] {
        assert!(xml.contains(needle), "missing {needle}\n{xml}");
    }
    // Same value, same text (derived ids are deterministic).
    assert_eq!(xml, sdm::to_xml(&base_app(vec![script_dt()])));
}

#[test]
fn cr_survives_and_unrepresentable_chars_become_replacement_char() {
    let mut app = base_app(vec![]);
    app.title = "a\r\nb\rc\td\u{1}e\u{FFFE}".into();
    app.localized[0].language = "x\"y'z\t\r\n".into();
    let back = sdm::parse(sdm::to_xml(&app).as_bytes()).expect("parse");
    assert_eq!(back.title, "a\r\nb\rc\td\u{FFFD}e\u{FFFD}");
    assert_eq!(back.localized[0].language, "x\"y'z\t\r\n");
}

// ---- property: arbitrary normalised applications round trip ----

/// Any string XML 1.0 can carry, biased towards markup-significant characters.
fn xml_string() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        "<", ">", "&", "\"", "'", "]]>", "\r", "\n", "\r\n", "\t", " ", "&amp;", "&#xD;",
        "\u{FEFF}", "\u{FFFD}", "é", "艾", "😀", "\u{85}", "\u{2028}",
    ])
    .prop_map(str::to_owned);
    // Map (rather than filter) non-XML characters: filtering rejects too many cases.
    let any = any::<char>().prop_map(|c| {
        if sdm::is_xml_char(c) {
            String::from(c)
        } else {
            String::from('\u{FFFD}')
        }
    });
    prop::collection::vec(prop_oneof![2 => special, 3 => any], 0..12).prop_map(|v| v.concat())
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    prop::option::of(xml_string()).prop_map(|o| o.filter(|s| !s.is_empty()))
}

fn expression(depth: u32) -> BoxedStrategy<Expression> {
    let leaf = prop_oneof![
        (xml_string(), xml_string())
            .prop_map(|(value, data_type)| Expression::Constant { value, data_type }),
        xml_string().prop_map(|rule_id| Expression::RuleReference { rule_id }),
        (any::<bool>(), xml_string(), xml_string(), xml_string()).prop_map(|(global, a, b, c)| {
            Expression::Setting(SettingReference {
                global,
                authoring_scope_id: a,
                setting_logical_name: b,
                property_path: c,
                method: "Value".into(),
                ..SettingReference::default()
            })
        }),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let op = prop::sample::select(vec!["And", "Or", "Equals", "GreaterEquals", "OneOf"])
        .prop_map(str::to_owned);
    prop_oneof![
        2 => leaf,
        1 => (op.clone(), prop::collection::vec(expression(depth - 1), 0..3))
            .prop_map(|(operator, operands)| Expression::Operation { operator, operands }),
        1 => (op, prop::collection::vec(expression(depth - 1), 0..3))
            .prop_map(|(operator, operands)| Expression::OperatingSystem { operator, operands }),
    ]
    .boxed()
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        xml_string(),
        xml_string(),
        any::<bool>(),
        xml_string(),
        prop::option::of(expression(3)),
    )
        .prop_map(|(id, severity, nc, display_name, expression)| Rule {
            id,
            severity,
            non_compliant_when_setting_not_found: nc,
            display_name,
            expression,
        })
}

fn detection() -> impl Strategy<Value = Detection> {
    let setting = prop_oneof![
        (
            xml_string(),
            xml_string(),
            xml_string(),
            xml_string(),
            xml_string(),
            any::<bool>()
        )
            .prop_map(
                |(logical_name, data_type, hive, key, value_name, is_64bit)| {
                    DetectionSetting::Registry {
                        logical_name,
                        data_type,
                        hive,
                        key,
                        value_name,
                        is_64bit,
                    }
                }
            ),
        (xml_string(), xml_string(), xml_string(), any::<bool>()).prop_map(
            |(logical_name, path, filter, is_64bit)| {
                DetectionSetting::File {
                    logical_name,
                    path,
                    filter,
                    is_64bit,
                }
            }
        ),
        (xml_string(), xml_string(), xml_string(), any::<bool>()).prop_map(
            |(logical_name, path, filter, is_64bit)| {
                DetectionSetting::Folder {
                    logical_name,
                    path,
                    filter,
                    is_64bit,
                }
            }
        ),
        (xml_string(), xml_string()).prop_map(|(logical_name, product_code)| {
            DetectionSetting::Msi {
                logical_name,
                product_code,
            }
        }),
    ];
    prop_oneof![
        Just(Detection::None),
        xml_string()
            .prop_map(|s| format!("{{{s}"))
            .prop_map(|product_code| Detection::MsiProductCode { product_code }),
        (xml_string(), xml_string(), any::<bool>()).prop_map(|(language, body, run_as_32bit)| {
            Detection::Script {
                language,
                body,
                run_as_32bit,
            }
        }),
        (
            prop::collection::vec(setting, 0..4),
            prop::option::of(rule())
        )
            .prop_map(|(settings, rule)| Detection::Enhanced { settings, rule }),
    ]
}

fn dependency_group() -> impl Strategy<Value = DependencyGroup> {
    let item = (
        xml_string(),
        xml_string(),
        xml_string(),
        xml_string(),
        any::<bool>(),
    )
        .prop_map(
            |(desired_state, application_logical_name, dt_logical_name, dt_version, changeable)| {
                DependencyItem {
                    desired_state,
                    application_logical_name,
                    dt_logical_name,
                    dt_version,
                    changeable,
                    ..DependencyItem::default()
                }
            },
        );
    (
        xml_string(),
        xml_string(),
        prop::sample::select(vec!["", "And", "Or"]),
        prop::collection::vec(item, 0..3),
    )
        .prop_map(|(id, name, operator, items)| DependencyGroup {
            id,
            severity: "Critical".into(),
            name,
            operator: operator.into(),
            items,
        })
}

fn deployment_type() -> impl Strategy<Value = DeploymentType> {
    let texts = (
        xml_string(),
        xml_string(),
        any::<u32>(),
        xml_string(),
        xml_string(),
        xml_string(),
    );
    let commands = (
        opt_string(),
        opt_string(),
        opt_string(),
        opt_string(),
        opt_string(),
        opt_string(),
        opt_string(),
    );
    let flags = (
        prop::option::of(any::<bool>()),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
    );
    let content = prop::collection::vec(xml_string(), 0..3).prop_flat_map(|locations| {
        let files = if locations.is_empty() {
            Just(Vec::new()).boxed()
        } else {
            prop::collection::vec(
                (xml_string(), any::<u64>()).prop_map(|(name, size)| ContentFile { name, size }),
                0..3,
            )
            .boxed()
        };
        (Just(locations), files)
    });
    let lists = (
        prop::collection::vec(
            (any::<i32>(), xml_string()).prop_map(|(c, class)| ExitCode {
                code: c.into(),
                class,
            }),
            0..4,
        ),
        prop::collection::vec(rule(), 0..2),
        prop::collection::vec(dependency_group(), 0..2),
        prop::collection::vec(dependency_group(), 0..2),
        prop::collection::vec(
            (
                xml_string(),
                prop::sample::select(vec!["String", "Boolean", "Int32"]),
                xml_string(),
            )
                .prop_map(|(name, ty, value)| ActionArg {
                    // Names of arguments with a field of their own would not come back here.
                    name: format!("Custom{name}"),
                    arg_type: ty.into(),
                    value,
                }),
            0..3,
        ),
    );
    (texts, commands, flags, content, detection(), lists).prop_map(
        |(
            (scope_id, logical_name, revision, title, admin_comment, technology),
            (install, install_wd, uninstall, uninstall_wd, ctx, mode, post),
            (log_on, interaction, x86, max, est),
            (content_locations, content_files),
            detection,
            (exit_codes, requirements, dependencies, supersedes, other_install_args),
        )| DeploymentType {
            scope_id,
            logical_name,
            revision,
            title,
            admin_comment,
            technology,
            content_locations,
            content_files,
            install_command: install,
            install_working_directory: install_wd,
            uninstall_command: uninstall,
            uninstall_working_directory: uninstall_wd,
            execution_context: ctx,
            requires_log_on: log_on,
            requires_user_interaction: interaction,
            user_interaction_mode: mode,
            post_install_behavior: post,
            max_run_time_mins: max,
            estimated_run_time_mins: est,
            run_as_32bit: x86,
            other_install_args,
            detection,
            exit_codes,
            requirements,
            dependencies,
            supersedes,
        },
    )
}

fn localized() -> impl Strategy<Value = LocalizedInfo> {
    (
        (
            xml_string(),
            xml_string(),
            xml_string(),
            xml_string(),
            xml_string(),
            xml_string(),
        ),
        (
            prop::collection::vec(xml_string(), 0..3),
            prop::collection::vec(xml_string(), 0..2),
        ),
        (xml_string(), xml_string(), xml_string()),
    )
        .prop_map(
            |(
                (language, title, publisher, version, description, release_date),
                (keywords, user_categories),
                (info_url, info_url_text, privacy_url),
            )| LocalizedInfo {
                language,
                title,
                publisher,
                version,
                description,
                release_date,
                keywords,
                user_categories,
                info_url,
                info_url_text,
                privacy_url,
            },
        )
}

fn application() -> impl Strategy<Value = Application> {
    (
        (
            xml_string(),
            xml_string(),
            any::<u32>(),
            xml_string(),
            xml_string(),
            xml_string(),
        ),
        (
            xml_string(),
            xml_string(),
            xml_string(),
            xml_string(),
            any::<bool>(),
        ),
        prop::collection::vec(localized(), 0..3),
        (
            prop::collection::vec(xml_string(), 0..2),
            prop::collection::vec(xml_string(), 0..2),
        ),
        prop::collection::vec(deployment_type(), 0..3),
    )
        .prop_map(
            |(
                (scope_id, logical_name, revision, title, publisher, version),
                (description, custom_id, release_date, default_language, auto_install),
                localized,
                (owners, contacts),
                deployment_types,
            )| Application {
                scope_id,
                logical_name,
                revision,
                title,
                publisher,
                version,
                description,
                custom_id,
                release_date,
                default_language,
                localized,
                auto_install,
                owners,
                contacts,
                icon_present: false,
                deployment_types,
            },
        )
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    // 256 cases by default; PROPTEST_CASES overrides (e.g. PROPTEST_CASES=20000 for a long run).
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    /// Every text field may hold any XML-representable character, including markup, quotes,
    /// `]]>`, CR/LF and non-BMP characters.
    #[test]
    fn arbitrary_application_round_trips(app in application()) {
        let xml = sdm::to_xml(&app);
        let back = sdm::parse(xml.as_bytes());
        prop_assert_eq!(back.as_ref(), Ok(&app), "{}", xml);
    }
}
