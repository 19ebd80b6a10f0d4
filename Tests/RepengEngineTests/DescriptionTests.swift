// Printing type tags and values never recurses (a regression guard for CustomStringConvertible).
import XCTest
@testable import RepengEngine

final class DescriptionTests: XCTestCase {
    func testEveryTypeTagPrints() {
        for t in GGUFValueType.allCases { XCTAssertFalse(t.description.isEmpty) }
        for t in GGMLType.allCases { XCTAssertFalse(t.description.isEmpty) }
        XCTAssertEqual(GGUFValueType.float32.description, "float32")
        XCTAssertEqual(GGMLType.q4_K.description, "Q4_K")
        XCTAssertFalse(GGUFValue.array(GGUFArray(.string(["a", "b"]))).description.isEmpty)
    }
}
